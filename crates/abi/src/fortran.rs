//! The Fortran 77/90 bindings with gfortran's conventions: lower-case names with one trailing
//! underscore, every argument by reference, `ierror` last, CHARACTER lengths as hidden
//! `size_t` arguments at the end. Handles are the C ints (conversion is the identity) and a
//! status is the C struct seen as INTEGER(MPI_STATUS_SIZE).
//!
//! MPI_BOTTOM, MPI_IN_PLACE, MPI_STATUS_IGNORE and MPI_STATUSES_IGNORE are variables in common
//! blocks that `mpif.h` declares and this library defines; a Fortran argument at one of those
//! addresses means the special value.

#![allow(clippy::missing_safety_doc)]

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_double, c_int, c_void};

use crate::capi::*;
use crate::ffi::{guard, put, slice_mut, write_f_string};
use crate::handles;
use crate::ops::UserFn;
use crate::request::MpiStatus;
use crate::{IN_PLACE_ADDR, STATUS_IGNORE_ADDR, STATUSES_IGNORE_ADDR};

/// Storage of a Fortran common block; only its address is used.
#[repr(C, align(16))]
pub(crate) struct CommonBlock(UnsafeCell<[c_int; 16]>);

// SAFETY: the library never reads or writes the contents; Fortran code may, on its own thread.
unsafe impl Sync for CommonBlock {}

const fn block() -> CommonBlock {
    CommonBlock(UnsafeCell::new([0; 16]))
}

#[unsafe(no_mangle)]
pub(crate) static mpicr_fbottom_: CommonBlock = block();
#[unsafe(no_mangle)]
pub(crate) static mpicr_finplace_: CommonBlock = block();
#[unsafe(no_mangle)]
pub(crate) static mpicr_fstatign_: CommonBlock = block();
#[unsafe(no_mangle)]
pub(crate) static mpicr_fstatsign_: CommonBlock = block();

fn at(b: &CommonBlock) -> usize {
    b.0.get() as usize
}

fn fval(p: *const c_int) -> c_int {
    crate::ffi::get(p, "an argument").unwrap_or(0)
}

fn faint(p: *const isize) -> isize {
    crate::ffi::get(p, "an argument").unwrap_or(0)
}

fn fbuf(p: *mut c_void) -> *mut c_void {
    let a = p as usize;
    if a == at(&mpicr_fbottom_) {
        std::ptr::null_mut()
    } else if a == at(&mpicr_finplace_) {
        IN_PLACE_ADDR as *mut c_void
    } else {
        p
    }
}

fn fstatus(p: *mut MpiStatus) -> *mut MpiStatus {
    let a = p as usize;
    if a == at(&mpicr_fstatign_) {
        STATUS_IGNORE_ADDR as *mut MpiStatus
    } else if a == at(&mpicr_fstatsign_) {
        STATUSES_IGNORE_ADDR as *mut MpiStatus
    } else {
        p
    }
}

macro_rules! fty {
    (i) => { *const c_int };
    (b) => { *mut c_void };
    (p) => { *mut c_int };
    (s) => { *mut MpiStatus };
    (a) => { *const isize };
    (q) => { *const isize };
    (o) => { *mut isize };
}

macro_rules! fconv {
    (i, $x:expr) => {
        fval($x)
    };
    (b, $x:expr) => {
        fbuf($x)
    };
    (p, $x:expr) => {
        $x
    };
    (s, $x:expr) => {
        fstatus($x)
    };
    (a, $x:expr) => {
        faint($x)
    };
    (q, $x:expr) => {
        $x
    };
    (o, $x:expr) => {
        $x
    };
}

macro_rules! fortran {
    ($( $fname:ident => $cfn:ident ( $($k:ident $arg:ident),* ) ; )*) => { $(
        #[unsafe(no_mangle)]
        pub(crate) unsafe extern "C" fn $fname($($arg: fty!($k),)* ierr: *mut c_int) {
            // SAFETY: the C function with the Fortran caller's arguments: scalars were read
            // through their references, arrays, buffers and outputs are passed on unchanged
            // (the same memory and types in both languages), special addresses translated.
            let r = unsafe { $cfn($(fconv!($k, $arg)),*) };
            put(ierr, r);
        }
    )* };
}

fortran! {
    mpi_initialized_ => PMPI_Initialized(p flag);
    mpi_finalized_ => PMPI_Finalized(p flag);
    mpi_finalize_ => PMPI_Finalize();
    mpi_query_thread_ => PMPI_Query_thread(p provided);
    mpi_is_thread_main_ => PMPI_Is_thread_main(p flag);
    mpi_get_version_ => PMPI_Get_version(p version, p subversion);
    mpi_error_class_ => PMPI_Error_class(i code, p class);
    mpi_comm_set_errhandler_ => PMPI_Comm_set_errhandler(i comm, i eh);
    mpi_errhandler_set_ => PMPI_Errhandler_set(i comm, i eh);
    mpi_comm_get_errhandler_ => PMPI_Comm_get_errhandler(i comm, p eh);
    mpi_errhandler_get_ => PMPI_Errhandler_get(i comm, p eh);
    mpi_errhandler_free_ => PMPI_Errhandler_free(p eh);
    mpi_send_ => PMPI_Send(b buf, i count, i dt, i dest, i tag, i comm);
    mpi_ssend_ => PMPI_Ssend(b buf, i count, i dt, i dest, i tag, i comm);
    mpi_rsend_ => PMPI_Rsend(b buf, i count, i dt, i dest, i tag, i comm);
    mpi_bsend_ => PMPI_Bsend(b buf, i count, i dt, i dest, i tag, i comm);
    mpi_recv_ => PMPI_Recv(b buf, i count, i dt, i source, i tag, i comm, s status);
    mpi_isend_ => PMPI_Isend(b buf, i count, i dt, i dest, i tag, i comm, p req);
    mpi_issend_ => PMPI_Issend(b buf, i count, i dt, i dest, i tag, i comm, p req);
    mpi_irsend_ => PMPI_Irsend(b buf, i count, i dt, i dest, i tag, i comm, p req);
    mpi_ibsend_ => PMPI_Ibsend(b buf, i count, i dt, i dest, i tag, i comm, p req);
    mpi_irecv_ => PMPI_Irecv(b buf, i count, i dt, i source, i tag, i comm, p req);
    mpi_sendrecv_ => PMPI_Sendrecv(b sbuf, i scount, i stype, i dest, i stag, b rbuf, i rcount, i rtype, i source, i rtag, i comm, s status);
    mpi_sendrecv_replace_ => PMPI_Sendrecv_replace(b buf, i count, i dt, i dest, i stag, i source, i rtag, i comm, s status);
    mpi_wait_ => PMPI_Wait(p req, s status);
    mpi_test_ => PMPI_Test(p req, p flag, s status);
    mpi_waitall_ => PMPI_Waitall(i n, p reqs, s statuses);
    mpi_testall_ => PMPI_Testall(i n, p reqs, p flag, s statuses);
    mpi_request_free_ => PMPI_Request_free(p req);
    mpi_cancel_ => PMPI_Cancel(p req);
    mpi_test_cancelled_ => PMPI_Test_cancelled(s status, p flag);
    mpi_probe_ => PMPI_Probe(i source, i tag, i comm, s status);
    mpi_iprobe_ => PMPI_Iprobe(i source, i tag, i comm, p flag, s status);
    mpi_get_count_ => PMPI_Get_count(s status, i dt, p count);
    mpi_get_elements_ => PMPI_Get_elements(s status, i dt, p count);
    mpi_send_init_ => PMPI_Send_init(b buf, i count, i dt, i dest, i tag, i comm, p req);
    mpi_ssend_init_ => PMPI_Ssend_init(b buf, i count, i dt, i dest, i tag, i comm, p req);
    mpi_bsend_init_ => PMPI_Bsend_init(b buf, i count, i dt, i dest, i tag, i comm, p req);
    mpi_rsend_init_ => PMPI_Rsend_init(b buf, i count, i dt, i dest, i tag, i comm, p req);
    mpi_recv_init_ => PMPI_Recv_init(b buf, i count, i dt, i source, i tag, i comm, p req);
    mpi_start_ => PMPI_Start(p req);
    mpi_startall_ => PMPI_Startall(i n, p reqs);
    mpi_barrier_ => PMPI_Barrier(i comm);
    mpi_bcast_ => PMPI_Bcast(b buf, i count, i dt, i root, i comm);
    mpi_reduce_ => PMPI_Reduce(b s, b r, i count, i dt, i op, i root, i comm);
    mpi_allreduce_ => PMPI_Allreduce(b s, b r, i count, i dt, i op, i comm);
    mpi_scan_ => PMPI_Scan(b s, b r, i count, i dt, i op, i comm);
    mpi_exscan_ => PMPI_Exscan(b s, b r, i count, i dt, i op, i comm);
    mpi_reduce_scatter_block_ => PMPI_Reduce_scatter_block(b s, b r, i count, i dt, i op, i comm);
    mpi_reduce_scatter_ => PMPI_Reduce_scatter(b s, b r, p rcounts, i dt, i op, i comm);
    mpi_gather_ => PMPI_Gather(b s, i sc, i st, b r, i rc, i rt, i root, i comm);
    mpi_gatherv_ => PMPI_Gatherv(b s, i sc, i st, b r, p rcs, p ds, i rt, i root, i comm);
    mpi_scatter_ => PMPI_Scatter(b s, i sc, i st, b r, i rc, i rt, i root, i comm);
    mpi_scatterv_ => PMPI_Scatterv(b s, p scs, p ds, i st, b r, i rc, i rt, i root, i comm);
    mpi_allgather_ => PMPI_Allgather(b s, i sc, i st, b r, i rc, i rt, i comm);
    mpi_allgatherv_ => PMPI_Allgatherv(b s, i sc, i st, b r, p rcs, p ds, i rt, i comm);
    mpi_alltoall_ => PMPI_Alltoall(b s, i sc, i st, b r, i rc, i rt, i comm);
    mpi_alltoallv_ => PMPI_Alltoallv(b s, p scs, p sds, i st, b r, p rcs, p rds, i rt, i comm);
    mpi_alltoallw_ => PMPI_Alltoallw(b s, p scs, p sds, p sts, b r, p rcs, p rds, p rts, i comm);
    mpi_ibarrier_ => PMPI_Ibarrier(i comm, p req);
    mpi_ibcast_ => PMPI_Ibcast(b buf, i count, i dt, i root, i comm, p req);
    mpi_ireduce_ => PMPI_Ireduce(b s, b r, i count, i dt, i op, i root, i comm, p req);
    mpi_iallreduce_ => PMPI_Iallreduce(b s, b r, i count, i dt, i op, i comm, p req);
    mpi_igather_ => PMPI_Igather(b s, i sc, i st, b r, i rc, i rt, i root, i comm, p req);
    mpi_igatherv_ => PMPI_Igatherv(b s, i sc, i st, b r, p rcs, p ds, i rt, i root, i comm, p req);
    mpi_iscatter_ => PMPI_Iscatter(b s, i sc, i st, b r, i rc, i rt, i root, i comm, p req);
    mpi_iscatterv_ => PMPI_Iscatterv(b s, p scs, p ds, i st, b r, i rc, i rt, i root, i comm, p req);
    mpi_iallgather_ => PMPI_Iallgather(b s, i sc, i st, b r, i rc, i rt, i comm, p req);
    mpi_iallgatherv_ => PMPI_Iallgatherv(b s, i sc, i st, b r, p rcs, p ds, i rt, i comm, p req);
    mpi_ialltoall_ => PMPI_Ialltoall(b s, i sc, i st, b r, i rc, i rt, i comm, p req);
    mpi_ialltoallv_ => PMPI_Ialltoallv(b s, p scs, p sds, i st, b r, p rcs, p rds, i rt, i comm, p req);
    mpi_ialltoallw_ => PMPI_Ialltoallw(b s, p scs, p sds, p sts, b r, p rcs, p rds, p rts, i comm, p req);
    mpi_type_contiguous_ => PMPI_Type_contiguous(i count, i old, p new);
    mpi_type_vector_ => PMPI_Type_vector(i count, i bl, i stride, i old, p new);
    mpi_type_create_hvector_ => PMPI_Type_create_hvector(i count, i bl, a stride, i old, p new);
    mpi_type_hvector_ => PMPI_Type_hvector(i count, i bl, a stride, i old, p new);
    mpi_type_indexed_ => PMPI_Type_indexed(i count, p bls, p ds, i old, p new);
    mpi_type_create_hindexed_ => PMPI_Type_create_hindexed(i count, p bls, q ds, i old, p new);
    mpi_type_hindexed_ => PMPI_Type_hindexed(i count, p bls, q ds, i old, p new);
    mpi_type_create_indexed_block_ => PMPI_Type_create_indexed_block(i count, i bl, p ds, i old, p new);
    mpi_type_create_hindexed_block_ => PMPI_Type_create_hindexed_block(i count, i bl, q ds, i old, p new);
    mpi_type_create_struct_ => PMPI_Type_create_struct(i count, p bls, q ds, p ts, p new);
    mpi_type_struct_ => PMPI_Type_struct(i count, p bls, q ds, p ts, p new);
    mpi_type_create_subarray_ => PMPI_Type_create_subarray(i nd, p sizes, p subs, p starts, i order, i old, p new);
    mpi_type_create_resized_ => PMPI_Type_create_resized(i old, a lb, a extent, p new);
    mpi_type_dup_ => PMPI_Type_dup(i old, p new);
    mpi_type_commit_ => PMPI_Type_commit(p dt);
    mpi_type_free_ => PMPI_Type_free(p dt);
    mpi_type_size_ => PMPI_Type_size(i dt, p size);
    mpi_type_get_extent_ => PMPI_Type_get_extent(i dt, o lb, o extent);
    mpi_type_get_true_extent_ => PMPI_Type_get_true_extent(i dt, o lb, o extent);
    mpi_pack_size_ => PMPI_Pack_size(i count, i dt, i comm, p size);
    mpi_pack_ => PMPI_Pack(b inbuf, i count, i dt, b outbuf, i outsize, p position, i comm);
    mpi_unpack_ => PMPI_Unpack(b inbuf, i insize, p position, b outbuf, i count, i dt, i comm);
    mpi_op_free_ => PMPI_Op_free(p op);
    mpi_op_commutative_ => PMPI_Op_commutative(i op, p commute);
    mpi_reduce_local_ => PMPI_Reduce_local(b inbuf, b inout, i count, i dt, i op);
    mpi_comm_size_ => PMPI_Comm_size(i comm, p size);
    mpi_comm_rank_ => PMPI_Comm_rank(i comm, p rank);
    mpi_comm_dup_ => PMPI_Comm_dup(i comm, p new);
    mpi_comm_split_ => PMPI_Comm_split(i comm, i color, i key, p new);
    mpi_comm_split_type_ => PMPI_Comm_split_type(i comm, i kind, i key, i info, p new);
    mpi_comm_create_ => PMPI_Comm_create(i comm, i group, p new);
    mpi_comm_free_ => PMPI_Comm_free(p comm);
    mpi_comm_compare_ => PMPI_Comm_compare(i a, i b, p result);
    mpi_comm_group_ => PMPI_Comm_group(i comm, p group);
    mpi_comm_test_inter_ => PMPI_Comm_test_inter(i comm, p flag);
    mpi_group_size_ => PMPI_Group_size(i g, p size);
    mpi_group_rank_ => PMPI_Group_rank(i g, p rank);
    mpi_group_incl_ => PMPI_Group_incl(i g, i n, p ranks, p new);
    mpi_group_excl_ => PMPI_Group_excl(i g, i n, p ranks, p new);
    mpi_group_union_ => PMPI_Group_union(i a, i b, p new);
    mpi_group_intersection_ => PMPI_Group_intersection(i a, i b, p new);
    mpi_group_difference_ => PMPI_Group_difference(i a, i b, p new);
    mpi_group_translate_ranks_ => PMPI_Group_translate_ranks(i a, i n, p r1, i b, p r2);
    mpi_group_compare_ => PMPI_Group_compare(i a, i b, p result);
    mpi_group_free_ => PMPI_Group_free(p g);
    mpi_dims_create_ => PMPI_Dims_create(i nnodes, i nd, p dims);
    mpi_cart_create_ => PMPI_Cart_create(i comm, i nd, p dims, p periods, i reorder, p new);
    mpi_cart_coords_ => PMPI_Cart_coords(i comm, i rank, i maxdims, p coords);
    mpi_cart_rank_ => PMPI_Cart_rank(i comm, p coords, p rank);
    mpi_cart_shift_ => PMPI_Cart_shift(i comm, i dir, i disp, p src, p dst);
    mpi_cart_sub_ => PMPI_Cart_sub(i comm, p remain, p new);
    mpi_cart_get_ => PMPI_Cart_get(i comm, i maxdims, p dims, p periods, p coords);
    mpi_cartdim_get_ => PMPI_Cartdim_get(i comm, p nd);
    mpi_topo_test_ => PMPI_Topo_test(i comm, p status);
    mpix_ckpt_unprotect_ => PMPIX_Ckpt_unprotect(i id);
    mpix_ckpt_restarted_ => PMPIX_Ckpt_restarted(p flag);
    mpix_ckpt_recover_ => PMPIX_Ckpt_recover();
    mpix_ckpt_safepoint_ => PMPIX_Ckpt_safepoint();
    mpix_ckpt_request_ => PMPIX_Ckpt_request();
    mpix_ckpt_disable_ => PMPIX_Ckpt_disable();
    mpix_ckpt_enable_ => PMPIX_Ckpt_enable();
}

/// `MPIX_CKPT_PROTECT(ID, BUF, BYTES, IERROR)`: `INTEGER ID`, any `BUF`,
/// `INTEGER(KIND=MPI_ADDRESS_KIND) BYTES`. BUF must stay valid until unprotected (a COMMON
/// block, a module or SAVEd variable, or an allocated array that is not deallocated).
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpix_ckpt_protect_(
    id: *const c_int,
    buf: *mut c_void,
    bytes: *const isize,
    ierr: *mut c_int,
) {
    let n = faint(bytes);
    let r = match usize::try_from(n) {
        // SAFETY: the Fortran caller's region is passed on unchanged; its size was read
        // through its reference.
        Ok(n) => unsafe { PMPIX_Ckpt_protect(fval(id), buf, n) },
        Err(_) => guard("MPIX_Ckpt_protect", None, || {
            Err(crate::ffi::error(
                handles::err::COUNT,
                format!("the region size {n} is negative"),
            ))
        }),
    };
    put(ierr, r);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_init_(ierr: *mut c_int) {
    // SAFETY: MPI_Init accepts null argc/argv.
    put(ierr, unsafe {
        PMPI_Init(std::ptr::null_mut(), std::ptr::null_mut())
    });
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_init_thread_(
    required: *const c_int,
    provided: *mut c_int,
    ierr: *mut c_int,
) {
    // SAFETY: null argc/argv are accepted; `provided` is the caller's INTEGER.
    put(ierr, unsafe {
        PMPI_Init_thread(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            fval(required),
            provided,
        )
    });
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn mpi_wtime_() -> c_double {
    PMPI_Wtime()
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn mpi_wtick_() -> c_double {
    PMPI_Wtick()
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_abort_(
    comm: *const c_int,
    code: *const c_int,
    ierr: *mut c_int,
) {
    // SAFETY: plain integers.
    put(ierr, unsafe { PMPI_Abort(fval(comm), fval(code)) });
}

fn fstring_call(name: &str, ierr: *mut c_int, body: impl FnOnce() -> crate::ffi::Res) {
    put(ierr, guard(name, None, body));
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_get_processor_name_(
    name: *mut c_char,
    len: *mut c_int,
    ierr: *mut c_int,
    cap: usize,
) {
    fstring_call("MPI_Get_processor_name", ierr, || {
        let n = write_f_string(name, cap, &crate::env::processor_name())?;
        put(len, n as c_int);
        Ok(())
    });
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_get_library_version_(
    s: *mut c_char,
    len: *mut c_int,
    ierr: *mut c_int,
    cap: usize,
) {
    fstring_call("MPI_Get_library_version", ierr, || {
        let n = write_f_string(s, cap, crate::env::LIBRARY_VERSION)?;
        put(len, n as c_int);
        Ok(())
    });
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_error_string_(
    code: *const c_int,
    s: *mut c_char,
    len: *mut c_int,
    ierr: *mut c_int,
    cap: usize,
) {
    fstring_call("MPI_Error_string", ierr, || {
        let n = write_f_string(s, cap, crate::env::error_string(fval(code))?)?;
        put(len, n as c_int);
        Ok(())
    });
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_comm_get_attr_(
    comm: *const c_int,
    key: *const c_int,
    value: *mut i64,
    flag: *mut c_int,
    ierr: *mut c_int,
) {
    let comm = fval(comm);
    put(
        ierr,
        guard("MPI_Comm_get_attr", Some(comm), || {
            let v = crate::capi::attr_value(comm, fval(key))?;
            put(flag, c_int::from(v.is_some()));
            if let Some(v) = v {
                put(value, i64::from(v));
            }
            Ok(())
        }),
    );
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_attr_get_(
    comm: *const c_int,
    key: *const c_int,
    value: *mut c_int,
    flag: *mut c_int,
    ierr: *mut c_int,
) {
    let comm = fval(comm);
    put(
        ierr,
        guard("MPI_Attr_get", Some(comm), || {
            let v = crate::capi::attr_value(comm, fval(key))?;
            put(flag, c_int::from(v.is_some()));
            if let Some(v) = v {
                put(value, v);
            }
            Ok(())
        }),
    );
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_buffer_attach_(
    buf: *mut c_void,
    size: *const c_int,
    ierr: *mut c_int,
) {
    // SAFETY: the buffer is passed on as the C binding's address.
    put(ierr, unsafe { PMPI_Buffer_attach(buf, fval(size)) });
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_buffer_detach_(
    _buf: *mut c_void,
    size: *mut c_int,
    ierr: *mut c_int,
) {
    let mut addr: usize = 0;
    // SAFETY: the address is written to a local; `size` is the caller's INTEGER.
    put(ierr, unsafe {
        PMPI_Buffer_detach((&raw mut addr).cast(), size)
    });
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_get_address_(
    location: *mut c_void,
    address: *mut isize,
    ierr: *mut c_int,
) {
    // SAFETY: only the address is taken.
    put(ierr, unsafe { PMPI_Get_address(location, address) });
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_type_extent_(
    dt: *const c_int,
    extent: *mut isize,
    ierr: *mut c_int,
) {
    // SAFETY: `extent` is the caller's INTEGER(MPI_ADDRESS_KIND).
    put(ierr, unsafe { PMPI_Type_extent(fval(dt), extent) });
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_op_create_(
    f: Option<UserFn>,
    commute: *const c_int,
    op: *mut c_int,
    ierr: *mut c_int,
) {
    // SAFETY: a Fortran reduction subroutine takes (invec, inoutvec, len, datatype) by
    // reference, which is the C MPI_User_function's signature.
    put(ierr, unsafe { PMPI_Op_create(f, fval(commute), op) });
}

/// Fortran indices are 1-based.
fn one_based(i: c_int) -> c_int {
    if i == handles::UNDEFINED || i < 0 {
        i
    } else {
        i + 1
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_waitany_(
    n: *const c_int,
    reqs: *mut c_int,
    index: *mut c_int,
    status: *mut MpiStatus,
    ierr: *mut c_int,
) {
    let mut i = 0;
    // SAFETY: arrays and status are the caller's, passed on; `i` is a local.
    let r = unsafe { PMPI_Waitany(fval(n), reqs, &mut i, fstatus(status)) };
    put(index, one_based(i));
    put(ierr, r);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_testany_(
    n: *const c_int,
    reqs: *mut c_int,
    index: *mut c_int,
    flag: *mut c_int,
    status: *mut MpiStatus,
    ierr: *mut c_int,
) {
    let mut i = 0;
    // SAFETY: as in mpi_waitany_.
    let r = unsafe { PMPI_Testany(fval(n), reqs, &mut i, flag, fstatus(status)) };
    put(index, one_based(i));
    put(ierr, r);
}

fn some(n: c_int, outcount: *mut c_int, indices: *mut c_int) {
    let k = crate::ffi::get(outcount, "outcount").unwrap_or(0);
    if k > 0
        && k <= n
        && let Ok(ix) = slice_mut(indices, k as usize, "indices")
    {
        for i in ix {
            *i += 1;
        }
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_waitsome_(
    n: *const c_int,
    reqs: *mut c_int,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut MpiStatus,
    ierr: *mut c_int,
) {
    // SAFETY: the caller's arrays, passed on.
    let r = unsafe { PMPI_Waitsome(fval(n), reqs, outcount, indices, fstatus(statuses)) };
    some(fval(n), outcount, indices);
    put(ierr, r);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_testsome_(
    n: *const c_int,
    reqs: *mut c_int,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut MpiStatus,
    ierr: *mut c_int,
) {
    // SAFETY: the caller's arrays, passed on.
    let r = unsafe { PMPI_Testsome(fval(n), reqs, outcount, indices, fstatus(statuses)) };
    some(fval(n), outcount, indices);
    put(ierr, r);
}

/// MPI_ADDRESS (MPI-1): the address as a default INTEGER, which holds it only when it fits.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn mpi_address_(
    location: *mut c_void,
    address: *mut c_int,
    ierr: *mut c_int,
) {
    let a = location as usize;
    put(
        ierr,
        guard("MPI_Address", None, || match c_int::try_from(a) {
            Ok(v) => {
                put(address, v);
                Ok(())
            }
            Err(_) => Err(crate::ffi::error(
                handles::err::ARG,
                "the address does not fit a default INTEGER; use MPI_GET_ADDRESS",
            )),
        }),
    );
}
