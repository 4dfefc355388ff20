//! Binding ranks to CPUs (`mpicr run --bind-to`, as mpirun's `-bind-to`): a rank that stays
//! on one core keeps its caches and is not moved away from the core its peer polls next to,
//! which is what makes small-message latency stable on a busy or virtual machine.
//!
//! The option reaches every node as the ranks' variable [`BIND_VAR`] (the same path as the
//! image options, and recorded with the snapshot, so a restarted job is bound as the first
//! run was). Each node binds its own ranks, in the order it starts them, to the *units* of
//! the CPUs it may use itself (its own affinity mask, so `taskset` or a cgroup on the node
//! limits the job too): a unit is one logical CPU for `hwthread`, the logical CPUs of one
//! physical core for `core`. With more ranks than units, binding wraps around.

use std::fs;
use std::io;

use rustix::thread::CpuSet;

/// The ranks' variable that carries `--bind-to`.
pub const BIND_VAR: &str = "MPICR_BIND_TO";

/// The ranks' variable that tells the runtime how many CPUs this node gives the job (the
/// affinity mask of the process that started the ranks): a bound rank's own mask has one
/// unit, which says nothing about whether its peers have cores of their own.
pub const NODE_CPUS_VAR: &str = "MPICR_NODE_CPUS";

/// What a rank is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindTo {
    /// Not bound: the kernel places the rank.
    None,
    /// The logical CPUs of one physical core.
    Core,
    /// One logical CPU.
    Hwthread,
}

impl BindTo {
    /// The value of [`BIND_VAR`] (and of `--bind-to`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Core => "core",
            Self::Hwthread => "hwthread",
        }
    }

    /// Parses a value of [`BIND_VAR`].
    pub fn parse(value: &str) -> Option<Self> {
        [Self::None, Self::Core, Self::Hwthread]
            .into_iter()
            .find(|b| b.as_str() == value)
    }
}

/// The CPU sets a node binds its ranks to, in the order it starts them.
#[derive(Clone)]
pub(crate) struct Binding {
    units: Vec<CpuSet>,
    node_cpus: usize,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("units", &self.units.len())
            .field("node_cpus", &self.node_cpus)
            .finish()
    }
}

impl Binding {
    /// The binding `bind` on the CPUs this process may use.
    pub(crate) fn new(bind: BindTo) -> io::Result<Self> {
        let allowed = rustix::thread::sched_getaffinity(None)?;
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|&c| allowed.is_set(c))
            .collect();
        let units = match bind {
            BindTo::None => Vec::new(),
            BindTo::Hwthread => cpus.iter().map(|&c| set_of(&[c])).collect(),
            BindTo::Core => cores(&cpus).iter().map(|unit| set_of(unit)).collect(),
        };
        Ok(Self {
            units,
            node_cpus: cpus.len().max(1),
        })
    }

    /// The set of the `index`-th rank started on this node; `None` when ranks are not bound.
    pub(crate) fn for_index(&self, index: usize) -> Option<CpuSet> {
        (!self.units.is_empty()).then(|| self.units[index % self.units.len()])
    }

    /// The number of CPUs this node gives the job (see [`NODE_CPUS_VAR`]).
    pub(crate) fn node_cpus(&self) -> usize {
        self.node_cpus
    }
}

fn set_of(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    set
}

/// `cpus` grouped by physical core (package and core id from sysfs), in order of each core's
/// first CPU; a CPU whose topology cannot be read is a core of its own.
fn cores(cpus: &[usize]) -> Vec<Vec<usize>> {
    /// A core's package and core id, when sysfs tells them.
    type CoreId = Option<(String, String)>;
    let mut groups: Vec<(CoreId, Vec<usize>)> = Vec::new();
    for &cpu in cpus {
        let topology = |name: &str| {
            fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/{name}"))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        let key = topology("physical_package_id").zip(topology("core_id"));
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, members)) => members.push(cpu),
            None => groups.push((key, vec![cpu])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_others_are_refused() {
        for b in [BindTo::None, BindTo::Core, BindTo::Hwthread] {
            assert_eq!(BindTo::parse(b.as_str()), Some(b));
        }
        assert_eq!(BindTo::parse("socket"), None);
        assert_eq!(BindTo::parse(""), None);
    }

    #[test]
    fn hwthread_binds_each_rank_to_one_allowed_cpu_and_wraps() {
        let binding = Binding::new(BindTo::Hwthread).unwrap();
        let allowed = rustix::thread::sched_getaffinity(None).unwrap();
        let n = binding.node_cpus();
        assert_eq!(n, allowed.count() as usize);
        for i in 0..2 * n {
            let set = binding.for_index(i).unwrap();
            assert_eq!(set.count(), 1);
            let cpu = (0..CpuSet::MAX_CPU).find(|&c| set.is_set(c)).unwrap();
            assert!(allowed.is_set(cpu));
        }
        let first = binding.for_index(0).unwrap();
        let wrapped = binding.for_index(n).unwrap();
        assert!((0..CpuSet::MAX_CPU).all(|c| first.is_set(c) == wrapped.is_set(c)));
    }

    #[test]
    fn cores_cover_every_allowed_cpu_once_and_none_binds_nothing() {
        let allowed = rustix::thread::sched_getaffinity(None).unwrap();
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|&c| allowed.is_set(c))
            .collect();
        let mut covered: Vec<usize> = cores(&cpus).concat();
        covered.sort_unstable();
        assert_eq!(covered, cpus);
        assert!(Binding::new(BindTo::None).unwrap().for_index(0).is_none());
    }
}
