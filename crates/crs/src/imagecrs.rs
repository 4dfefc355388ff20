//! The `image` checkpointer: the whole process, transparently (DESIGN.md §4). The engine
//! chooses the moment (an image checkpoint's drain is complete, see `engine::ckpt`); this
//! component captures the process there with a forked writer (`image::capture_in_child_with`),
//! leaving the job's shared-memory links out, and then writes the rank's part: a store part
//! whose section `image/file` names the image file beside it with its size and checksum.
//! In a process restored from the image, the capture returns the restorer's hand-over of the
//! new job's environment.

use std::io::Write;
use std::path::{Path, PathBuf};

use engine::{ImageCapture, ImageRequest, ImageWriter, NotCaptured};
use std::cell::RefCell;
use std::rc::Rc;

use image::{CaptureError, CaptureOptions, Chain, ChildCapture, ChildOutcome, ImageRef};
use store::{PartReader, PartWriter};
use wire::PartDone;

use crate::{Checkpointer, CrsError, CrsState, PartRequest, SnapshotRef};

/// Something to do just before every capture (flushing a C library's stdio buffers, so that
/// output written before the checkpoint is not written again by a restored process).
pub type BeforeCapture = Box<dyn FnMut()>;

thread_local! {
    static BEFORE_CAPTURE: std::cell::RefCell<Vec<BeforeCapture>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Registers something every image checkpointer of this (single-threaded) process does just
/// before a capture: a front end's output flush (the C library's `fflush(NULL)`).
pub fn before_image_capture(f: BeforeCapture) {
    BEFORE_CAPTURE.with(|hooks| hooks.borrow_mut().push(f));
}

/// A full image every this many images unless `MPICR_IMAGE_FULL_EVERY` says otherwise.
pub(crate) const DEFAULT_FULL_EVERY: u32 = 8;

/// The `image` component.
pub struct ImageCheckpointer {
    job: String,
    /// `MPICR_IMAGE_COMPRESS` (`--compress`), or why its value is not usable.
    compress: Result<image::Codec, String>,
    /// The chain of this rank's images (`MPICR_IMAGE_FULL_EVERY`, `--full-every`: a full
    /// image every K, incremental ones between).
    chain: Rc<RefCell<Chain>>,
    before_capture: Vec<BeforeCapture>,
}

impl std::fmt::Debug for ImageCheckpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageCheckpointer")
            .field("job", &self.job)
            .field("compress", &self.compress)
            .field("chain", &self.chain)
            .field("before_capture", &self.before_capture.len())
            .finish()
    }
}

impl ImageCheckpointer {
    pub const NAME: &'static str = "image";

    pub fn new(job: &str) -> Self {
        let (compress, full_every) = image_settings();
        Self {
            job: job.into(),
            compress,
            chain: Rc::new(RefCell::new(Chain::new(full_every))),
            before_capture: Vec::new(),
        }
    }

    /// Adds something to do just before every capture.
    pub fn before_capture(&mut self, f: BeforeCapture) {
        self.before_capture.push(f);
    }

    fn flush_output(&mut self) {
        for f in &mut self.before_capture {
            f();
        }
        BEFORE_CAPTURE.with(|hooks| {
            if let Ok(mut hooks) = hooks.try_borrow_mut() {
                for f in hooks.iter_mut() {
                    f();
                }
            }
        });
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
}

/// The image options of this rank's job: the codec of `MPICR_IMAGE_COMPRESS` (`--compress`),
/// or why its value is not usable, and `MPICR_IMAGE_FULL_EVERY` (`--full-every`).
pub fn image_settings() -> (Result<image::Codec, String>, u32) {
    let compress = std::env::var("MPICR_IMAGE_COMPRESS")
        .unwrap_or_default()
        .parse::<image::Codec>()
        .map_err(|e| format!("MPICR_IMAGE_COMPRESS: {e}"));
    let full_every = std::env::var("MPICR_IMAGE_FULL_EVERY")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&k| k >= 1)
        .unwrap_or(DEFAULT_FULL_EVERY);
    (compress, full_every)
}

/// Writes `rank`'s part for the image at `image`: the section naming it, size and checksum.
pub fn write_image_part(
    dir: &Path,
    image: &Path,
    job: &str,
    epoch: u64,
    rank: u32,
) -> Result<PartDone, CrsError> {
    let reference = ImageRef::of_file(image).map_err(|e| CrsError::Image(e.to_string()))?;
    let mut writer = PartWriter::create(dir, job, epoch, rank, ImageCheckpointer::NAME)?;
    writer.section(image::partref::SECTION, &reference.encode())?;
    let info = writer.finish()?;
    Ok(PartDone {
        epoch,
        rank,
        file: info.file,
        size: info.size,
        crc32c: info.crc32c,
        checkpointer: ImageCheckpointer::NAME.into(),
        in_transit: 0,
    })
}

/// Checks an `image` part and the image it names (all of it), without restoring anything:
/// what a restart does for every such part before it starts a rank.
pub fn verify_image_part(dir: &Path, part: &PartReader) -> Result<(), CrsError> {
    if part.checkpointer() != ImageCheckpointer::NAME {
        return Err(CrsError::WrongCheckpointer {
            rank: part.rank(),
            found: part.checkpointer().into(),
            expected: ImageCheckpointer::NAME,
        });
    }
    let bytes = part.section(image::partref::SECTION)?;
    let reference = ImageRef::decode(&bytes).map_err(CrsError::Image)?;
    reference.verify(dir, part.rank()).map_err(CrsError::Image)
}

/// Whether the rank reports each image's stall, write time and size, and the moment it was
/// restored, on stderr (`MPICR_IMAGE_STATS=1`; `bench/table2` reads these lines).
fn stats_wanted() -> bool {
    std::env::var_os("MPICR_IMAGE_STATS").is_some_and(|v| v == "1")
}

/// A forked writer at work; then, for a checkpoint, the part.
#[derive(Debug)]
struct PendingImage {
    child: Option<ChildCapture>,
    chain: Rc<RefCell<Chain>>,
    /// How long the rank stalled in the capture (output flush, phase A, fork).
    stall: std::time::Duration,
    /// The output flush before the capture.
    flush: std::time::Duration,
    dir: PathBuf,
    path: PathBuf,
    job: String,
    epoch: u64,
    rank: u32,
}

impl ImageWriter for PendingImage {
    fn poll(&mut self, block: bool) -> Option<Result<(), String>> {
        let child = self.child.as_mut()?;
        let written = if block {
            child.wait()
        } else {
            child.try_wait()?
        };
        let mut child = self.child.take()?;
        match &written {
            Ok(()) => self.chain.borrow_mut().written(&self.path),
            Err(_) => self.chain.borrow_mut().failed(),
        }
        if written.is_ok() {
            self.report(&mut child);
        }
        Some(written.map_err(|e| format!("writing the image of rank {} failed: {e}", self.rank)))
    }

    fn write_part(&self) -> Result<PartDone, String> {
        write_image_part(&self.dir, &self.path, &self.job, self.epoch, self.rank)
            .map_err(|e| e.to_string())
    }
}

impl PendingImage {
    /// Where the checkpoint's time went: at debug level, and on stderr with
    /// `MPICR_IMAGE_STATS=1`. `write_us` is the writer's own time from the fork to its fsync's
    /// end, `bytes` the image's size; the rest split the stall and the writer's time by step.
    fn report(&self, child: &mut ChildCapture) {
        let (st, w) = (child.stall(), child.report());
        let line = format!(
            "rank={} epoch={} stall_us={} write_us={} bytes={} flush_us={} prepare_us={} \
             chain_us={} fork_us={} fork_cpu_us={} stall_cpu_us={} child_first_us={} \
             child_yielded_us={} plan_us={} read_us={} compute_us={} syscall_write_us={} \
             sync_us={} cpu_us={} copied_bytes={}",
            self.rank,
            self.epoch,
            self.stall.as_micros(),
            w.total.as_micros(),
            w.bytes,
            self.flush.as_micros(),
            st.prepare.as_micros(),
            st.chain.as_micros(),
            st.fork.as_micros(),
            st.fork_cpu.as_micros(),
            st.cpu.as_micros(),
            w.first.as_micros(),
            w.yielded.as_micros(),
            w.plan.as_micros(),
            w.read.as_micros(),
            w.compute.as_micros(),
            w.write.as_micros(),
            w.sync.as_micros(),
            w.cpu.as_micros(),
            w.copied,
        );
        tracing::debug!("image written: {line}");
        if stats_wanted() {
            eprintln!("mpicr-image-stats {line}");
        }
    }
}

impl engine::ImageCheckpointer for ImageCheckpointer {
    fn capture(&mut self, request: ImageRequest<'_>) -> Result<ImageCapture, NotCaptured> {
        match image::ChildrenLeftBehind::find() {
            Ok(None) => {}
            // A fork before its waitpid, a popen before its pclose: the coordinator asks
            // again in a moment.
            Ok(Some(children)) => {
                return Err(NotCaptured {
                    reason: children.to_string(),
                    retry: true,
                });
            }
            Err(e) => {
                return Err(NotCaptured::failed(format!(
                    "listing its child processes failed: {e}"
                )));
            }
        }
        let started = std::time::Instant::now();
        self.flush_output();
        let flush = started.elapsed();
        let dir = PathBuf::from(request.dir);
        let path = dir.join(image::image_file_name(request.rank));
        let options = CaptureOptions {
            exclude_dirs: request.exclude_dirs.to_vec(),
            compress: self.compress.clone().map_err(NotCaptured::failed)?,
            background: request.migration,
        };
        let captured = {
            let mut chain = self.chain.borrow_mut();
            if request.migration {
                // Full: the target gets this one file, not the parents an incremental image
                // would name. The next checkpoint's image is full as well.
                chain.failed();
            }
            image::capture_in_child_chained(&path, &options, &mut chain)
        };
        match captured {
            Ok(ChildOutcome::Started(child)) => Ok(ImageCapture::Writing(Box::new(PendingImage {
                child: Some(child),
                chain: self.chain.clone(),
                stall: started.elapsed(),
                flush,
                dir,
                path,
                job: self.job.clone(),
                epoch: request.epoch,
                rank: request.rank,
            }))),
            Ok(ChildOutcome::Restored) => {
                if stats_wanted() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros());
                    eprintln!(
                        "mpicr-image-stats rank={} restored_unix_us={now}",
                        request.rank
                    );
                }
                image::take_restart_env()
                    .map(ImageCapture::Restored)
                    .ok_or_else(|| {
                        NotCaptured::failed("restored without the restorer's environment hand-over")
                    })
            }
            // An MPI program has the other checkpointer; a preloaded one does not.
            Err(e @ (CaptureError::MultiThreaded(_) | CaptureError::ReservedFd)) => {
                Err(NotCaptured::failed(format!(
                    "capturing its image failed: {e}; checkpoint this program with --crs self"
                )))
            }
            Err(e) => Err(NotCaptured::failed(format!(
                "capturing its image failed: {e}"
            ))),
        }
    }
}

impl Checkpointer for ImageCheckpointer {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// Captures this process (`pid` must be our own: capture is from inside) into `part.dir`
    /// and writes its part, waiting for the writer. Inside a job the engine calls the capture
    /// itself at the moment its drain is complete and does not wait (see `engine::ckpt`).
    fn checkpoint(
        &mut self,
        pid: u32,
        part: PartRequest<'_>,
    ) -> Result<(SnapshotRef, CrsState), CrsError> {
        if pid != std::process::id() {
            return Err(CrsError::Image(format!(
                "the image checkpointer captures its own process, not pid {pid}"
            )));
        }
        let dir = part.dir.to_string_lossy().into_owned();
        let request = ImageRequest {
            epoch: part.epoch,
            rank: part.rank,
            dir: &dir,
            exclude_dirs: &[],
            migration: false,
        };
        match engine::ImageCheckpointer::capture(self, request)
            .map_err(|not| CrsError::Image(not.reason))?
        {
            ImageCapture::Writing(mut writer) => {
                let done = writer
                    .poll(true)
                    .unwrap_or_else(|| Err("the writer reported nothing".into()))
                    .and_then(|()| writer.write_part())
                    .map_err(CrsError::Image)?;
                Ok((
                    SnapshotRef {
                        checkpointer: Self::NAME.into(),
                        file: done.file,
                    },
                    CrsState::Continue,
                ))
            }
            ImageCapture::Restored(_) => Ok((
                SnapshotRef {
                    checkpointer: Self::NAME.into(),
                    file: store::part_file_name(part.rank),
                },
                CrsState::Restart,
            )),
        }
    }

    /// Verifies the part and its image, then starts the restorer through `spawn_child`.
    fn restart(
        &mut self,
        part: &PartReader,
        spawn_child: &mut dyn FnMut() -> Result<u32, CrsError>,
    ) -> Result<u32, CrsError> {
        let dir = part
            .path()
            .parent()
            .ok_or_else(|| CrsError::Image("the part has no directory".into()))?;
        verify_image_part(dir, part)?;
        spawn_child()
    }

    /// Nothing to do here: the engine keeps an image checkpoint out of a disabled region,
    /// deferring a drain that has not begun and holding the capture of one that has
    /// (`engine::defer`).
    fn disable_checkpoint(&mut self) {}

    fn enable_checkpoint(&mut self) {}
}
