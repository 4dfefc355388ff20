//! Communicators: a group of world ranks and a pair of contexts that keep their traffic apart.
//!
//! Context `ctx` carries point-to-point messages and `ctx + 1` the communicator's collectives,
//! so a user's receive with ANY_TAG can never catch a collective's message. New contexts are
//! agreed on collectively: every member proposes the next context it has never used and all
//! take the maximum. A rank thus never holds two communicators with one context, which is all
//! matching needs (members of different communicators never share a message).

use std::rc::Rc;

use crate::EngineError;
use crate::coll;
use crate::engine::Engine;

/// A communicator as the engine sees it.
#[derive(Debug, Clone)]
pub struct Comm {
    ctx: u32,
    /// World rank of each member, by communicator rank.
    ranks: Rc<[u32]>,
    rank: u32,
}

impl Comm {
    /// All ranks of the job, in world order.
    pub fn world(engine: &Engine) -> Self {
        Self {
            ctx: crate::WORLD_CTX,
            ranks: (0..engine.size()).collect(),
            rank: engine.rank(),
        }
    }

    /// This rank's number in the communicator.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    pub fn size(&self) -> u32 {
        self.ranks.len() as u32
    }

    /// The context of point-to-point traffic.
    pub fn p2p_ctx(&self) -> u32 {
        self.ctx
    }

    /// The context of collective traffic.
    pub fn coll_ctx(&self) -> u32 {
        self.ctx + 1
    }

    /// The world rank of member `rank`, checked.
    pub fn world_rank(&self, rank: i64) -> Result<u32, EngineError> {
        usize::try_from(rank)
            .ok()
            .and_then(|r| self.ranks.get(r).copied())
            .ok_or(EngineError::InvalidRank {
                rank,
                size: self.size(),
            })
    }

    /// The member number of world rank `world`, if it belongs.
    pub fn local_rank(&self, world: u32) -> Option<u32> {
        if self.ranks.get(world as usize) == Some(&world) {
            return Some(world);
        }
        self.ranks
            .iter()
            .position(|&w| w == world)
            .map(|p| p as u32)
    }

    /// The world ranks of the members, by communicator rank.
    pub fn members(&self) -> &[u32] {
        &self.ranks
    }

    /// A new context pair every member agrees on.
    fn agree_on_ctx(&self, engine: &mut Engine) -> Result<u32, EngineError> {
        let mine = engine.next_ctx.to_le_bytes();
        let mut agreed = [0u8; 4];
        let max = |a: &[u8], b: &mut [u8]| {
            let x = u32::from_le_bytes(a.try_into().expect("4 bytes"));
            let y = u32::from_le_bytes((&*b).try_into().expect("4 bytes"));
            b.copy_from_slice(&x.max(y).to_le_bytes());
        };
        coll::allreduce(engine, self, &mine, &mut agreed, &max, true)?;
        let ctx = u32::from_le_bytes(agreed);
        engine.next_ctx = ctx + 2;
        Ok(ctx)
    }

    /// MPI_Comm_split: members with the same `color` form a new communicator, ordered by `key`
    /// and then by rank here. `None` (MPI_UNDEFINED) takes part but gets no communicator.
    pub fn split(
        &self,
        engine: &mut Engine,
        color: Option<u32>,
        key: i32,
    ) -> Result<Option<Comm>, EngineError> {
        let ctx = self.agree_on_ctx(engine)?;
        let mut mine = [0u8; 12];
        mine[..4].copy_from_slice(&color.map_or(u32::MAX, |c| c).to_le_bytes());
        mine[4..8].copy_from_slice(&key.to_le_bytes());
        mine[8..].copy_from_slice(&self.rank.to_le_bytes());
        let mut all = vec![0u8; 12 * self.ranks.len()];
        coll::allgather(engine, self, &mine, &mut all)?;
        let Some(color) = color else { return Ok(None) };
        let mut members: Vec<(i32, u32)> = all
            .chunks_exact(12)
            .filter(|c| u32::from_le_bytes(c[..4].try_into().expect("4")) == color)
            .map(|c| {
                let key = i32::from_le_bytes(c[4..8].try_into().expect("4"));
                let rank = u32::from_le_bytes(c[8..].try_into().expect("4"));
                (key, rank)
            })
            .collect();
        members.sort_unstable();
        let rank = members
            .iter()
            .position(|&(_, r)| r == self.rank)
            .expect("this rank is a member") as u32;
        let ranks = members
            .iter()
            .map(|&(_, r)| self.ranks[r as usize])
            .collect();
        Ok(Some(Comm { ctx, ranks, rank }))
    }

    /// MPI_Comm_dup: the same members in the same order, with new contexts.
    pub fn dup(&self, engine: &mut Engine) -> Result<Comm, EngineError> {
        let ctx = self.agree_on_ctx(engine)?;
        Ok(Comm {
            ctx,
            ranks: self.ranks.clone(),
            rank: self.rank,
        })
    }
}
