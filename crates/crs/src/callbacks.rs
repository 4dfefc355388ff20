//! Layered coordination callbacks (the Open MPI paper's §5).
//!
//! The chain starts with the base layer's callback. Each later layer registers a callback
//! that receives the one it replaces and is responsible for calling it: the runtime layer
//! wraps the base, the MPI layer wraps the runtime, the application wraps the MPI layer. A
//! request therefore runs application → MPI → runtime → base, and every layer can act before
//! and after the layers beneath it.

use std::fmt;

use engine::Engine;
use wire::PartDone;

use crate::{CrsError, CrsState};

/// The layers, in registration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    Base,
    Runtime,
    Mpi,
    Application,
}

/// Writes the part once the MPI layer has the channel state: gets every section and the
/// number of messages they hold, returns what PART_DONE reports.
pub type WritePart = Box<dyn FnOnce(Vec<(String, Vec<u8>)>, u64) -> Result<PartDone, String>>;

/// What one run of the chain sees.
pub struct Event<'a> {
    pub state: CrsState,
    pub epoch: u64,
    pub engine: &'a mut Engine,
    /// Named sections of the part: gathered on the way to a checkpoint, read on a restart.
    pub sections: Vec<(String, Vec<u8>)>,
    /// On CHECKPOINT: the writer of the part, taken by the MPI layer when it starts the drain.
    pub write_part: Option<WritePart>,
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("state", &self.state)
            .field("epoch", &self.epoch)
            .field(
                "sections",
                &self
                    .sections
                    .iter()
                    .map(|(n, b)| (n, b.len()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Event<'_> {
    /// The bytes of section `name`, if the part has it.
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }
}

/// One layer's callback.
pub type Callback = Box<dyn FnMut(&mut Event<'_>) -> Result<(), CrsError>>;

/// The chain of callbacks.
pub struct Callbacks {
    chain: Callback,
    layers: Vec<Layer>,
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("layers", &self.layers)
            .finish()
    }
}

impl Default for Callbacks {
    fn default() -> Self {
        Self::new()
    }
}

impl Callbacks {
    /// A chain holding the base layer, which does nothing itself.
    pub fn new() -> Self {
        Self {
            chain: Box::new(|_| Ok(())),
            layers: vec![Layer::Base],
        }
    }

    /// Registers `layer`: `make` receives the callback it replaces and returns the new one,
    /// which must call the replaced one. Layers register in order (base first).
    pub fn register(&mut self, layer: Layer, make: impl FnOnce(Callback) -> Callback) {
        debug_assert!(
            self.layers.last().is_some_and(|&l| l < layer),
            "layers register in order"
        );
        let previous = std::mem::replace(&mut self.chain, Box::new(|_| Ok(())));
        self.chain = make(previous);
        self.layers.push(layer);
    }

    /// Runs the whole chain.
    pub fn run(&mut self, event: &mut Event<'_>) -> Result<(), CrsError> {
        (self.chain)(event)
    }

    /// The layers registered so far, base first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
}
