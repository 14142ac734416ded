//! The control socket: who may connect, who owns the path, how big a
//! request may be.
//!
//! - Mode 0600 (0660 with `control.group`), whatever the umask: the socket
//!   is bound inside a fresh 0700 directory, given its mode there, and only
//!   then renamed into place — no moment where others can connect.
//! - In a directory only root (or our user) can write: elsewhere anyone
//!   could replace it with their own.
//! - One daemon per path: a lock file held for the daemon's life, and a
//!   socket that answers at the path make a second daemon refuse to start;
//!   a stale socket (nobody listening) is replaced.
//! - Connections from other users are refused with an error (SO_PEERCRED),
//!   even if the file's mode were wrong.
//! - A request longer than [`MAX_REQUEST`] is read to its end (and thrown
//!   away) before the error goes back, so the client gets the error instead
//!   of a reset.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{Request, Response, MAX_REQUEST};

/// Answers one request (asynchronously: the daemon asks its registrar).
pub type Handler = Arc<
    dyn Fn(Request) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>
        + Send
        + Sync,
>;

/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes read from an oversized request before giving up on it.
const DRAIN_MAX: u64 = 16 << 20;

/// The bound control socket. The path is removed on drop if it is still
/// the socket this created (never another daemon's).
#[derive(Debug)]
pub struct ControlListener {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file we created.
    id: (u64, u64),
    /// Group allowed besides root/our user (its members pass SO_PEERCRED).
    group: Option<u32>,
    _lock: File,
}

impl Drop for ControlListener {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// [`bind_with`] without a group: mode 0600.
pub fn bind(path: &Path) -> Result<ControlListener> {
    bind_with(path, None)
}

/// Binds the control socket at `path` (see the module doc). Needs a tokio runtime.
pub fn bind_with(path: &Path, group: Option<u32>) -> Result<ControlListener> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    private_dir(dir)?;
    let lock = lock(path)?;
    claim(path)?;
    let tmp = dir.join(format!(".pmipd-ctl.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let r = bind_in(&tmp, path, group);
    let _ = std::fs::remove_dir_all(&tmp);
    let std = r?;
    let m = std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    std.set_nonblocking(true)?;
    Ok(ControlListener {
        listener: UnixListener::from_std(std)?,
        path: path.to_path_buf(),
        id: (m.dev(), m.ino()),
        group,
        _lock: lock,
    })
}

/// The directory must exist (created 0755 if not) and be writable by root
/// or our user only.
fn private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let m = std::fs::metadata(dir).with_context(|| format!("{}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != 0 && m.uid() != me {
        bail!(
            "{} belongs to uid {}: the control socket's directory must be root's",
            dir.display(),
            m.uid()
        );
    }
    let mode = m.permissions().mode();
    if mode & 0o022 != 0 {
        bail!(
            "{} is writable by others (mode {:o}): anyone could replace the control socket; \
             use a directory only root can write (e.g. /run/pmip)",
            dir.display(),
            mode & 0o7777
        );
    }
    Ok(())
}

/// `<path>.lock`, locked for as long as the returned file lives.
fn lock(path: &Path) -> Result<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    // SAFETY: a valid descriptor; flock takes no pointers.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            bail!(
                "another pmipd is running with control socket {} (it holds {})",
                path.display(),
                lock_path.display()
            );
        }
        return Err(e).with_context(|| format!("locking {}", lock_path.display()));
    }
    Ok(f)
}

/// A live socket at `path` is another daemon's; a stale one may be replaced;
/// anything else is not ours to touch.
fn claim(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !m.file_type().is_socket() {
        bail!("{} exists and is not a socket", path.display());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!(
            "a pmipd is already serving {} (stop it first, or give this one another control.socket)",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()), // stale
        Err(e) => Err(e).with_context(|| format!("probing {}", path.display())),
    }
}

/// Binds in the private `tmp`, sets the mode (and group), and renames the
/// socket to `path` (replacing a stale one in one step).
fn bind_in(
    tmp: &Path,
    path: &Path,
    group: Option<u32>,
) -> Result<std::os::unix::net::UnixListener> {
    let staged = tmp.join("s");
    let l = std::os::unix::net::UnixListener::bind(&staged)
        .with_context(|| format!("binding {} (for {})", staged.display(), path.display()))?;
    if let Some(g) = group {
        std::os::unix::fs::chown(&staged, None, Some(g))
            .with_context(|| format!("giving {} to group {g}", path.display()))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&staged, path).with_context(|| format!("moving to {}", path.display()))?;
    Ok(l)
}

/// The connecting process's user and group (SO_PEERCRED).
fn peer_cred(s: &UnixStream) -> io::Result<(u32, u32)> {
    // SAFETY: all-zero is a valid ucred.
    let mut c: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: valid fd, pointer and length of a ucred.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((c.uid, c.gid))
}

/// Root, our own user, or (with a configured group, which the socket's
/// mode already checked with supplementary groups) anyone who got through.
fn allowed(cred: (u32, u32), group: Option<u32>) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    cred.0 == 0 || cred.0 == me || group.is_some()
}

/// One request line, or the error to answer: too long (read to its end
/// first), not UTF-8 JSON, or not a request.
async fn read_request(stream: &mut UnixStream) -> Result<Result<Request, String>> {
    let mut line = Vec::new();
    let mut reader = BufReader::new(stream).take(MAX_REQUEST as u64 + 1);
    reader.read_until(b'\n', &mut line).await?;
    if line.len() > MAX_REQUEST {
        // Read the rest of the line: closing with unread data would reset
        // the connection and the client would never see the error.
        let mut rest = reader.into_inner().take(DRAIN_MAX);
        let mut sink = Vec::new();
        loop {
            sink.clear();
            let n = rest.read_until(b'\n', &mut sink).await?;
            if n == 0 || sink.last() == Some(&b'\n') || rest.limit() == 0 {
                break;
            }
        }
        return Ok(Err(format!(
            "request longer than {MAX_REQUEST} bytes (is the NAI or a name that long?)"
        )));
    }
    Ok(serde_json::from_slice::<Request>(&line).map_err(|e| format!("bad request: {e}")))
}

async fn serve_one(mut stream: UnixStream, handler: Handler, group: Option<u32>) -> Result<()> {
    // The request is read in every case: closing with it unread would
    // reset the connection, and the client would never see why.
    let req = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await??;
    let resp = match (peer_cred(&stream), req) {
        (Ok(cred), _) if !allowed(cred, group) => Response::Error {
            message: format!(
                "permission denied: uid {} may not use pmipd's control socket (root only, or \
                 control.group)",
                cred.0
            ),
        },
        (_, Ok(req)) => handler(req).await,
        (_, Err(message)) => Response::Error { message },
    };
    let mut out = serde_json::to_vec(&resp)?;
    out.push(b'\n');
    stream.write_all(&out).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Answers requests on `listener` forever, one task per connection.
pub async fn serve(listener: ControlListener, handler: Handler) -> Result<()> {
    loop {
        let (s, _) = listener.listener.accept().await?;
        let h = handler.clone();
        let group = listener.group;
        tokio::spawn(async move {
            if let Err(e) = serve_one(s, h, group).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

/// Sends one request and waits for the response.
pub async fn request(path: &Path, req: &Request) -> Result<Response> {
    let mut s = UnixStream::connect(path)
        .await
        .with_context(|| format!("connecting to {}", path.display()))?;
    let mut out = serde_json::to_vec(req)?;
    out.push(b'\n');
    s.write_all(&out).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    serde_json::from_slice(&buf)
        .with_context(|| format!("bad response: {}", String::from_utf8_lossy(&buf)))
}

/// Blocking variant for the pmipctl binary.
pub fn request_blocking(path: &Path, req: &Request, timeout: Duration) -> Result<Response> {
    use std::io::{Read, Write};
    let mut s = match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => bail!(
            "connecting to {}: permission denied (pmipctl must run as root, or as a member \
             of the daemon's control.group)",
            path.display()
        ),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("connecting to {} (is pmipd running?)", path.display()))
        }
    };
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut out = serde_json::to_vec(req)?;
    out.push(b'\n');
    s.write_all(&out)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    serde_json::from_slice(&buf)
        .with_context(|| format!("bad response: {}", String::from_utf8_lossy(&buf)))
}

#[cfg(test)]
mod tests;
