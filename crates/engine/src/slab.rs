//! A table of requests addressed by generation-tagged ids.
//!
//! Ids travel to peers inside rendezvous packets, so a stale id (a request that completed and
//! whose slot was reused) must be recognised rather than silently matched: the high 32 bits
//! carry the slot's generation.

#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 live requests")
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.0 = slot.0.wrapping_add(1);
        slot.1 = Some(value);
        (u64::from(slot.0) << 32) | u64::from(index)
    }

    fn slot(&self, id: u64) -> Option<usize> {
        let index = (id & 0xffff_ffff) as usize;
        let generation = (id >> 32) as u32;
        match self.slots.get(index) {
            Some((g, Some(_))) if *g == generation => Some(index),
            _ => None,
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<&T> {
        self.slot(id).and_then(|i| self.slots[i].1.as_ref())
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        self.slot(id).and_then(|i| self.slots[i].1.as_mut())
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let i = self.slot(id)?;
        self.free.push(i as u32);
        self.slots[i].1.take()
    }

    /// The id of some live entry, if any.
    pub(crate) fn any_id(&self) -> Option<u64> {
        self.slots
            .iter()
            .enumerate()
            .find(|(_, (_, v))| v.is_some())
            .map(|(i, (g, _))| (u64::from(*g) << 32) | i as u64)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_are_not_found() {
        let mut s = Slab::new();
        let a = s.insert(1);
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2);
        assert_ne!(a, b);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(s.len(), 1);
    }
}
