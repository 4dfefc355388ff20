//! Communicators, groups, Cartesian topologies, attributes and error handlers.

use std::ffi::c_int;
use std::rc::Rc;

use engine::Comm;

use crate::ffi::{Res, bail, error};
use crate::handles::{self, UNDEFINED, err};
use crate::state::{self, Cart, CommObj, tables, with_engine};

fn new_comm(c: Option<Comm>, cart: Option<Cart>) -> Res<c_int> {
    match c {
        Some(c) => tables(|t| t.add_comm(CommObj::new(c, cart))),
        None => Ok(0),
    }
}

pub(crate) fn dup(comm: c_int) -> Res<c_int> {
    let c = state::comm(comm)?;
    let d = with_engine(|e| c.comm.dup(e))??;
    let h = new_comm(Some(d), c.cart.clone())?;
    let n = state::comm(h)?;
    n.errhandler.set(c.errhandler.get());
    Ok(h)
}

pub(crate) fn split(comm: c_int, color: c_int, key: c_int) -> Res<c_int> {
    let c = state::comm(comm)?;
    if color < 0 && color != UNDEFINED {
        bail!(err::ARG, "invalid color {color}");
    }
    let color = (color != UNDEFINED).then_some(color as u32);
    let s = with_engine(|e| c.comm.split(e, color, key))??;
    new_comm(s, None)
}

pub(crate) fn split_type(comm: c_int, kind: c_int, key: c_int) -> Res<c_int> {
    if kind == UNDEFINED {
        return split(comm, UNDEFINED, key);
    }
    if kind != handles::COMM_TYPE_SHARED {
        bail!(err::ARG, "unknown split type {kind}");
    }
    let node = crate::env::processor_name();
    let color = node
        .bytes()
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        & 0x3fff_ffff;
    split(comm, color as c_int, key)
}

/// MPI_Comm_create: the members of `group` (a subgroup of the communicator) form a new one.
pub(crate) fn create(comm: c_int, group: c_int) -> Res<c_int> {
    let c = state::comm(comm)?;
    let g = state::group(group)?;
    let me = c.comm.members()[c.comm.rank() as usize];
    let pos = g.iter().position(|&w| w == me);
    let color = if pos.is_some() { 0 } else { UNDEFINED };
    let key = pos.map_or(0, |p| p as c_int);
    split(comm, color, key)
}

pub(crate) fn free(comm: &mut c_int) -> Res {
    if *comm == handles::COMM_WORLD || *comm == handles::COMM_SELF {
        bail!(
            err::COMM,
            "MPI_COMM_WORLD and MPI_COMM_SELF cannot be freed"
        );
    }
    state::comm(*comm)?;
    tables(|t| {
        if let Some(i) = handles::index(handles::Kind::Comm, *comm) {
            t.comms[i] = None;
        }
    })?;
    *comm = 0;
    Ok(())
}

pub(crate) fn compare(a: c_int, b: c_int) -> Res<c_int> {
    let (x, y) = (state::comm(a)?, state::comm(b)?);
    Ok(if a == b {
        handles::IDENT
    } else if x.comm.members() == y.comm.members() {
        handles::CONGRUENT
    } else {
        let mut p = x.comm.members().to_vec();
        let mut q = y.comm.members().to_vec();
        p.sort_unstable();
        q.sort_unstable();
        if p == q {
            handles::SIMILAR
        } else {
            handles::UNEQUAL
        }
    })
}

pub(crate) fn group_of(comm: c_int) -> Res<c_int> {
    let c = state::comm(comm)?;
    let g = c.comm.members().to_vec();
    tables(|t| t.add_group(g))
}

// ---- groups ----

pub(crate) fn group_size(g: c_int) -> Res<c_int> {
    Ok(state::group(g)?.len() as c_int)
}

/// This process's rank in `g`, or MPI_UNDEFINED.
pub(crate) fn group_rank(g: c_int) -> Res<c_int> {
    let g = state::group(g)?;
    let me = with_engine(|e| e.rank())?;
    Ok(g.iter()
        .position(|&w| w == me)
        .map_or(UNDEFINED, |p| p as c_int))
}

fn check_ranks(g: &[u32], ranks: &[c_int]) -> Res {
    for &r in ranks {
        if r < 0 || r as usize >= g.len() {
            bail!(err::RANK, "invalid rank {r} (group of {} ranks)", g.len());
        }
    }
    let mut seen = ranks.to_vec();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        bail!(err::RANK, "a rank appears twice");
    }
    Ok(())
}

pub(crate) fn group_incl(g: c_int, ranks: &[c_int]) -> Res<c_int> {
    let g = state::group(g)?;
    check_ranks(&g, ranks)?;
    let v = ranks.iter().map(|&r| g[r as usize]).collect();
    tables(|t| t.add_group(v))
}

pub(crate) fn group_excl(g: c_int, ranks: &[c_int]) -> Res<c_int> {
    let g = state::group(g)?;
    check_ranks(&g, ranks)?;
    let v = g
        .iter()
        .enumerate()
        .filter(|(i, _)| !ranks.contains(&(*i as c_int)))
        .map(|(_, &w)| w)
        .collect();
    tables(|t| t.add_group(v))
}

pub(crate) fn group_union(a: c_int, b: c_int) -> Res<c_int> {
    let (a, b) = (state::group(a)?, state::group(b)?);
    let mut v = a.to_vec();
    v.extend(b.iter().filter(|w| !a.contains(w)));
    tables(|t| t.add_group(v))
}

pub(crate) fn group_intersection(a: c_int, b: c_int) -> Res<c_int> {
    let (a, b) = (state::group(a)?, state::group(b)?);
    let v = a.iter().copied().filter(|w| b.contains(w)).collect();
    tables(|t| t.add_group(v))
}

pub(crate) fn group_difference(a: c_int, b: c_int) -> Res<c_int> {
    let (a, b) = (state::group(a)?, state::group(b)?);
    let v = a.iter().copied().filter(|w| !b.contains(w)).collect();
    tables(|t| t.add_group(v))
}

pub(crate) fn group_translate(a: c_int, ranks: &[c_int], b: c_int, out: &mut [c_int]) -> Res {
    let (ga, gb) = (state::group(a)?, state::group(b)?);
    for (i, &r) in ranks.iter().enumerate() {
        out[i] = if r == handles::PROC_NULL {
            handles::PROC_NULL
        } else {
            if r < 0 || r as usize >= ga.len() {
                bail!(err::RANK, "invalid rank {r} (group of {} ranks)", ga.len());
            }
            let w = ga[r as usize];
            gb.iter()
                .position(|&x| x == w)
                .map_or(UNDEFINED, |p| p as c_int)
        };
    }
    Ok(())
}

pub(crate) fn group_compare(a: c_int, b: c_int) -> Res<c_int> {
    let (x, y) = (state::group(a)?, state::group(b)?);
    Ok(if x == y {
        handles::IDENT
    } else {
        let mut p = x.to_vec();
        let mut q = y.to_vec();
        p.sort_unstable();
        q.sort_unstable();
        if p == q {
            handles::SIMILAR
        } else {
            handles::UNEQUAL
        }
    })
}

pub(crate) fn group_free(g: &mut c_int) -> Res {
    state::group(*g)?;
    if *g != handles::GROUP_EMPTY {
        tables(|t| {
            if let Some(i) = handles::index(handles::Kind::Group, *g) {
                t.groups[i] = None;
            }
        })?;
    }
    *g = 0;
    Ok(())
}

// ---- Cartesian topologies ----

pub(crate) fn dims_create(nnodes: c_int, dims: &mut [c_int]) -> Res {
    if nnodes <= 0 {
        bail!(err::ARG, "the number of nodes {nnodes} is not positive");
    }
    let mut rest = nnodes;
    let mut free = 0;
    for &d in dims.iter() {
        if d < 0 {
            bail!(err::DIMS, "dimension {d} is negative");
        }
        if d > 0 {
            if rest % d != 0 {
                bail!(
                    err::DIMS,
                    "{nnodes} nodes cannot be divided along a dimension of {d}"
                );
            }
            rest /= d;
        } else {
            free += 1;
        }
    }
    if free == 0 {
        if rest != 1 {
            bail!(err::DIMS, "the dimensions do not multiply to {nnodes}");
        }
        return Ok(());
    }
    // Prime factors, largest first, each given to the currently smallest free dimension.
    let mut factors = Vec::new();
    let mut n = rest;
    let mut p = 2;
    while p * p <= n {
        while n % p == 0 {
            factors.push(p);
            n /= p;
        }
        p += 1;
    }
    if n > 1 {
        factors.push(n);
    }
    factors.sort_unstable_by(|a, b| b.cmp(a));
    let mut free_dims = vec![1; free];
    for f in factors {
        let i = (0..free)
            .min_by_key(|&i| free_dims[i])
            .expect("at least one free dimension");
        free_dims[i] *= f;
    }
    free_dims.sort_unstable_by(|a, b| b.cmp(a));
    let mut it = free_dims.into_iter();
    for d in dims.iter_mut() {
        if *d == 0 {
            *d = it.next().unwrap_or(1);
        }
    }
    Ok(())
}

pub(crate) fn cart_create(comm: c_int, dims: &[c_int], periods: &[c_int]) -> Res<c_int> {
    let c = state::comm(comm)?;
    if dims.iter().any(|&d| d <= 0) {
        bail!(err::DIMS, "every dimension must be positive");
    }
    let total: i64 = dims.iter().map(|&d| i64::from(d)).product();
    if total > i64::from(c.comm.size()) {
        bail!(
            err::TOPOLOGY,
            "a grid of {total} ranks does not fit a communicator of {}",
            c.comm.size()
        );
    }
    let me = c.comm.rank();
    let color = if i64::from(me) < total { 0 } else { UNDEFINED };
    let color = (color != UNDEFINED).then_some(0u32);
    let s = with_engine(|e| c.comm.split(e, color, me as i32))??;
    let cart = Cart {
        dims: dims.to_vec(),
        periods: periods.iter().map(|&p| p != 0).collect(),
    };
    new_comm(s, Some(cart))
}

fn cart_of(comm: c_int) -> Res<(Rc<CommObj>, Cart)> {
    let c = state::comm(comm)?;
    let cart = c
        .cart
        .clone()
        .ok_or_else(|| error(err::TOPOLOGY, "the communicator has no Cartesian topology"))?;
    Ok((c, cart))
}

pub(crate) fn coords_of(cart: &Cart, rank: c_int) -> Vec<c_int> {
    let mut r = rank;
    let mut out = vec![0; cart.dims.len()];
    for i in (0..cart.dims.len()).rev() {
        out[i] = r % cart.dims[i];
        r /= cart.dims[i];
    }
    out
}

/// The rank at `coords`, or None when a non-periodic coordinate is outside the grid.
fn rank_at(cart: &Cart, coords: &[c_int]) -> Option<c_int> {
    let mut r = 0;
    for (i, &c) in coords.iter().enumerate() {
        let d = cart.dims[i];
        let c = if cart.periods[i] {
            c.rem_euclid(d)
        } else if (0..d).contains(&c) {
            c
        } else {
            return None;
        };
        r = r * d + c;
    }
    Some(r)
}

pub(crate) fn cart_coords(comm: c_int, rank: c_int, out: &mut [c_int]) -> Res {
    let (c, cart) = cart_of(comm)?;
    crate::request::check_rank(&c, rank, "rank")?;
    let co = coords_of(&cart, rank);
    let n = out.len().min(co.len());
    out[..n].copy_from_slice(&co[..n]);
    Ok(())
}

pub(crate) fn cart_rank(comm: c_int, coords: &[c_int]) -> Res<c_int> {
    let (_, cart) = cart_of(comm)?;
    rank_at(&cart, coords).ok_or_else(|| {
        error(
            err::ARG,
            "the coordinates lie outside the non-periodic grid",
        )
    })
}

pub(crate) fn cart_shift(comm: c_int, dir: c_int, disp: c_int) -> Res<(c_int, c_int)> {
    let (c, cart) = cart_of(comm)?;
    if dir < 0 || dir as usize >= cart.dims.len() {
        bail!(err::ARG, "direction {dir} is not a dimension of the grid");
    }
    let co = coords_of(&cart, c.comm.rank() as c_int);
    let at = |delta: c_int| {
        let mut x = co.clone();
        x[dir as usize] += delta;
        rank_at(&cart, &x).unwrap_or(handles::PROC_NULL)
    };
    Ok((at(-disp), at(disp)))
}

pub(crate) fn cart_get(comm: c_int) -> Res<(Cart, Vec<c_int>)> {
    let (c, cart) = cart_of(comm)?;
    let co = coords_of(&cart, c.comm.rank() as c_int);
    Ok((cart, co))
}

pub(crate) fn cartdim(comm: c_int) -> Res<c_int> {
    Ok(cart_of(comm)?.1.dims.len() as c_int)
}

pub(crate) fn cart_sub(comm: c_int, remain: &[c_int]) -> Res<c_int> {
    let (c, cart) = cart_of(comm)?;
    if remain.len() != cart.dims.len() {
        bail!(err::ARG, "one flag per dimension is needed");
    }
    let co = coords_of(&cart, c.comm.rank() as c_int);
    let mut color = 0;
    let mut key = 0;
    let mut dims = Vec::new();
    let mut periods = Vec::new();
    for i in 0..co.len() {
        if remain[i] != 0 {
            key = key * cart.dims[i] + co[i];
            dims.push(cart.dims[i]);
            periods.push(cart.periods[i]);
        } else {
            color = color * cart.dims[i] + co[i];
        }
    }
    let s = with_engine(|e| c.comm.split(e, Some(color as u32), key))??;
    new_comm(s, Some(Cart { dims, periods }))
}

pub(crate) fn topo_test(comm: c_int) -> Res<c_int> {
    let c = state::comm(comm)?;
    Ok(if c.cart.is_some() {
        handles::CART
    } else {
        UNDEFINED
    })
}

// ---- error handlers ----

pub(crate) fn set_errhandler(comm: c_int, eh: c_int) -> Res {
    let c = state::comm(comm)?;
    if eh != handles::ERRORS_ARE_FATAL && eh != handles::ERRORS_RETURN {
        bail!(err::ARG, "invalid error handler {eh}");
    }
    c.errhandler.set(eh);
    Ok(())
}

pub(crate) fn get_errhandler(comm: c_int) -> Res<c_int> {
    Ok(state::comm(comm)?.errhandler.get())
}
