//! Reading a module's file without trusting what its path names now.
//!
//! Between two saves, a module's path can come to name something that is not a file: a FIFO
//! (opening it for reading waits for a writer, for ever, and goes on waiting after the FIFO is
//! removed), a link to `/dev/zero` or `/dev/urandom` (reading never ends), a folder, a socket.
//! Every read of a module's source hotlua makes (finding it for a reload, recording it after
//! `require`, the watcher's comparison, SIGHUP's, the audit log's) goes through [`read`]: it
//! looks at what the path names before opening it, opens it without blocking, checks again on
//! the opened file (the path may have been swapped meanwhile), and reads only a regular file,
//! and at most [`MAX_MODULE_FILE`] bytes of it. The error says what the path names instead.
//!
//! `require` itself has no such guard (lua5.4's neither): a module whose file is a FIFO when
//! the program first requires it blocks there, as it does in lua5.4.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// The largest module file hotlua reads, in bytes: 256 MiB, far above any real module (the
/// largest generated data modules seen run to tens of MiB), far below what would hurt the
/// program's memory.
pub const MAX_MODULE_FILE: u64 = 256 << 20;

/// The bytes of the regular file at `path`: never blocks on a FIFO or a device, never reads
/// more than [`MAX_MODULE_FILE`] bytes.
///
/// # Errors
///
/// The system's error (missing, permission denied), or one saying what `path` names instead of
/// a regular file, or that the file is larger than the limit.
pub(crate) fn read(path: &Path) -> io::Result<Vec<u8>> {
    // Checked before opening: opening some devices has effects of its own.
    check(&std::fs::metadata(path)?)?;
    let file = open(path)?;
    let metadata = file.metadata()?;
    check(&metadata)?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(metadata.len() as usize)
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "no memory to read the file"))?;
    // One byte more than allowed tells a file that grew past the limit since its size was read.
    file.take(MAX_MODULE_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_MODULE_FILE {
        return Err(too_large());
    }
    Ok(bytes)
}

/// True when `path` can be opened for reading, as the `fopen` of Lua's `package.searchpath`
/// checks, without waiting on a FIFO.
pub(crate) fn is_readable(path: &Path) -> bool {
    open(path).is_ok()
}

/// Opens `path` for reading; on Unix without blocking (a FIFO without writer opens at once).
fn open(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

/// Refuses anything but a regular file of at most [`MAX_MODULE_FILE`] bytes.
fn check(metadata: &Metadata) -> io::Result<()> {
    if !metadata.is_file() {
        return Err(io::Error::other(format!(
            "it is {}, not a regular file; only regular files are read",
            kind(metadata)
        )));
    }
    if metadata.len() > MAX_MODULE_FILE {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> io::Error {
    io::Error::other(format!(
        "it is larger than {} MiB, the most hotlua reads of a module's file",
        MAX_MODULE_FILE >> 20
    ))
}

/// What a path that is not a regular file names, in words.
fn kind(metadata: &Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}
