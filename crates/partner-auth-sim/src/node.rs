//! The id of a replica's process: which replica, which life of it. Every record of the run and
//! every trace line names a process by it.

use std::fmt;

/// One life of one replica: a process. A replica killed and started again is a new life, with
/// an empty cache; the old life's tasks stop at their next step and never run again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    /// Which replica.
    pub replica: usize,
    /// Which life of it (0 for the first).
    pub life: u32,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.life {
            0 => write!(f, "r{}", self.replica),
            life => write!(f, "r{}.{life}", self.replica),
        }
    }
}
