//! The entry point: every checkpoint request, whoever made it, is taken here at a safepoint,
//! and a restarted rank is brought back here before the application runs.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use engine::{Engine, FinishPart, SafepointAction};
use wire::PartDone;

use crate::callbacks::{Callback, Callbacks, Event, Layer, WritePart};
use crate::imagecrs::ImageCheckpointer;
use crate::messages::{decode_messages, encode_messages};
use crate::selfcrs::SelfCheckpointer;
use crate::{Checkpointer, CrsError, CrsState, PartRequest};

const MESSAGES: &str = "mpi/messages";
const RUNTIME: &str = "runtime/meta";

/// What a restarted rank learns from its part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarted {
    pub epoch: u64,
    /// The safepoint the snapshot was taken at.
    pub safepoints: u64,
    /// The application's named sections.
    pub sections: Vec<(String, Vec<u8>)>,
}

/// The checkpoint/restart entry point of one rank.
pub struct EntryPoint {
    job: String,
    callbacks: Callbacks,
    crs: Rc<RefCell<SelfCheckpointer>>,
    /// The job checkpoints with the image checkpointer (the engine holds it).
    image: bool,
}

impl std::fmt::Debug for EntryPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryPoint")
            .field("job", &self.job)
            .field("callbacks", &self.callbacks)
            .finish()
    }
}

fn runtime_layer(prev: Callback) -> Callback {
    let mut prev = prev;
    Box::new(move |ev: &mut Event<'_>| {
        match ev.state {
            CrsState::Checkpoint => {
                let mut meta = ev.engine.safepoints().to_le_bytes().to_vec();
                meta.extend_from_slice(&ev.engine.rank().to_le_bytes());
                ev.sections.push((RUNTIME.into(), meta));
            }
            CrsState::Restart => {
                let meta = ev.section(RUNTIME).ok_or_else(|| CrsError::Malformed {
                    section: RUNTIME.into(),
                    reason: "it is missing".into(),
                })?;
                let count = meta
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
                    .ok_or_else(|| CrsError::Malformed {
                        section: RUNTIME.into(),
                        reason: "it is too short".into(),
                    })?;
                ev.engine.set_safepoints(count);
            }
            CrsState::Continue | CrsState::Terminate => {}
        }
        prev(ev)
    })
}

fn mpi_layer(prev: Callback) -> Callback {
    let mut prev = prev;
    Box::new(move |ev: &mut Event<'_>| match ev.state {
        CrsState::Checkpoint => {
            prev(ev)?;
            let write = ev
                .write_part
                .take()
                .ok_or_else(|| CrsError::Application("the part writer was already taken".into()))?;
            let sections = std::mem::take(&mut ev.sections);
            let finish: FinishPart = Box::new(move |messages| {
                let mut sections = sections;
                sections.push((MESSAGES.into(), encode_messages(&messages)));
                write(sections, messages.len() as u64)
            });
            Ok(ev.engine.take_local_snapshot(ev.epoch, finish)?)
        }
        CrsState::Restart => {
            if let Some(bytes) = ev.section(MESSAGES) {
                let messages = decode_messages(MESSAGES, bytes)?;
                ev.engine.preload(messages);
            }
            prev(ev)
        }
        CrsState::Continue | CrsState::Terminate => prev(ev),
    })
}

impl EntryPoint {
    /// An entry point with the base, runtime and MPI layers registered.
    pub fn new(job: &str) -> Self {
        let mut callbacks = Callbacks::new();
        callbacks.register(Layer::Runtime, runtime_layer);
        callbacks.register(Layer::Mpi, mpi_layer);
        Self {
            job: job.into(),
            callbacks,
            crs: Rc::new(RefCell::new(SelfCheckpointer::default())),
            image: false,
        }
    }

    /// The entry point of a rank that has just joined its job (MPI_Init of every front end):
    /// the base, runtime and MPI layers and the application's, named after `MPICR_JOB`. When
    /// the launcher set `MPICR_RESTART_DIR`, the rank is brought back from that snapshot here;
    /// call it before the engine makes any progress, so that the saved messages are delivered
    /// before anything a peer sends after the restart.
    pub fn start(
        engine: &mut Engine,
        application: impl FnOnce(Callback) -> Callback,
    ) -> Result<(Self, Option<Restarted>), CrsError> {
        let job = std::env::var("MPICR_JOB").unwrap_or_else(|_| "singleton".into());
        let mut entry = Self::new(&job);
        entry.register_application(application);
        if std::env::var("MPICR_CRS").as_deref() == Ok(ImageCheckpointer::NAME) {
            engine.set_image_checkpointer(Box::new(ImageCheckpointer::new(&job)));
            entry.image = true;
        }
        let restarted = match std::env::var_os("MPICR_RESTART_DIR") {
            Some(dir) if !dir.is_empty() => Some(entry.restart(engine, Path::new(&dir))?),
            _ => None,
        };
        Ok((entry, restarted))
    }

    /// Registers the application layer's callback (it must call the one it receives).
    pub fn register_application(&mut self, make: impl FnOnce(Callback) -> Callback) {
        self.callbacks.register(Layer::Application, make);
    }

    /// A safepoint: when the coordinator chose this one, runs the checkpoint (the part is
    /// written once the channel state is complete, while the rank computes on). Returns the
    /// epoch of the checkpoint taken here, if any.
    pub fn safepoint(&mut self, engine: &mut Engine) -> Result<Option<u64>, CrsError> {
        let SafepointAction::Checkpoint { epoch, dir } = engine.safepoint()? else {
            return Ok(None);
        };
        self.checkpoint(engine, epoch, &dir)?;
        Ok(Some(epoch))
    }

    /// Takes checkpoint `epoch` here, into staging directory `dir` (after
    /// [`Engine::safepoint`] said so): the layers gather their sections, the MPI layer starts
    /// the drain, and the part is written when the channel state is complete.
    pub fn checkpoint(
        &mut self,
        engine: &mut Engine,
        epoch: u64,
        dir: &str,
    ) -> Result<(), CrsError> {
        let write = self.part_writer(PathBuf::from(dir), epoch, engine.rank());
        let mut event = Event {
            state: CrsState::Checkpoint,
            epoch,
            engine,
            sections: Vec::new(),
            write_part: Some(write),
        };
        self.callbacks.run(&mut event)?;
        event.state = CrsState::Continue;
        self.callbacks.run(&mut event)
    }

    fn part_writer(&self, dir: PathBuf, epoch: u64, rank: u32) -> WritePart {
        let crs = self.crs.clone();
        let job = self.job.clone();
        Box::new(move |sections, in_transit| {
            let mut crs = crs.borrow_mut();
            crs.stage(sections);
            let part = PartRequest {
                dir: &dir,
                job: &job,
                epoch,
                rank,
            };
            let (reference, _state) = crs
                .checkpoint(std::process::id(), part)
                .map_err(|e| e.to_string())?;
            let info = crs.last_part().ok_or("the checkpointer reported no part")?;
            Ok(PartDone {
                epoch,
                rank,
                file: reference.file,
                size: info.size,
                crc32c: info.crc32c,
                checkpointer: reference.checkpointer,
                in_transit,
            })
        })
    }

    /// Brings this rank back from the snapshot in `dir` (before the application runs).
    pub fn restart(&mut self, engine: &mut Engine, dir: &Path) -> Result<Restarted, CrsError> {
        let snapshot = store::Snapshot::open(dir)?;
        let rank = engine.rank();
        let part = snapshot.read_part(rank)?;
        self.crs
            .borrow_mut()
            .restart(&part, &mut || Ok(std::process::id()))?;
        let mut sections = Vec::new();
        for name in part.sections().map(str::to_owned).collect::<Vec<_>>() {
            let bytes = part.section(&name)?;
            sections.push((name, bytes));
        }
        let epoch = part.epoch();
        let mut event = Event {
            state: CrsState::Restart,
            epoch,
            engine,
            sections,
            write_part: None,
        };
        self.callbacks.run(&mut event)?;
        let safepoints = event.engine.safepoints();
        let sections = event
            .sections
            .into_iter()
            .filter(|(n, _)| n.starts_with("app/"))
            .collect();
        Ok(Restarted {
            epoch,
            safepoints,
            sections,
        })
    }

    /// No snapshot is taken until [`EntryPoint::enable`] (MPIX_Ckpt_disable).
    pub fn disable(&mut self, engine: &mut Engine) {
        self.crs.borrow_mut().disable_checkpoint();
        engine.disable_checkpoint();
    }

    /// Ends a disabled region; an image checkpoint that waited for it begins now.
    pub fn enable(&mut self, engine: &mut Engine) -> Result<(), CrsError> {
        self.crs.borrow_mut().enable_checkpoint();
        Ok(engine.enable_checkpoint()?)
    }

    /// The component this job checkpoints with.
    pub fn checkpointer_name(&self) -> &'static str {
        if self.image {
            return ImageCheckpointer::NAME;
        }
        self.crs.borrow().name()
    }
}

/// Sections of the application are named `app/<name>`.
pub fn app_section(name: &str) -> String {
    format!("app/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_run_application_first_and_each_calls_the_one_it_replaced() {
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut callbacks = Callbacks::new();
        for (layer, name) in [
            (Layer::Runtime, "runtime"),
            (Layer::Mpi, "mpi"),
            (Layer::Application, "app"),
        ] {
            let order = order.clone();
            callbacks.register(layer, move |mut prev| {
                Box::new(move |ev| {
                    order.borrow_mut().push(format!("{name} before"));
                    prev(ev)?;
                    order.borrow_mut().push(format!("{name} after"));
                    Ok(())
                })
            });
        }
        let mut engine = engine::join().unwrap().engine;
        let mut ev = Event {
            state: CrsState::Continue,
            epoch: 1,
            engine: &mut engine,
            sections: vec![],
            write_part: None,
        };
        callbacks.run(&mut ev).unwrap();
        assert_eq!(
            *order.borrow(),
            [
                "app before",
                "mpi before",
                "runtime before",
                "runtime after",
                "mpi after",
                "app after"
            ]
        );
        assert_eq!(
            callbacks.layers(),
            [Layer::Base, Layer::Runtime, Layer::Mpi, Layer::Application]
        );
    }
}
