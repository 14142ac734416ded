use super::*;

/// A scratch directory of mode 0755, removed on drop.
struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("pmip-ctlsock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Dir(p)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn echo() -> Handler {
    Arc::new(|r| {
        let resp = match r {
            Request::ClearBinding { nai } => Response::Cleared {
                nai,
                found: false,
                refusal: false,
            },
            _ => Response::Tunnels(vec![]),
        };
        Box::pin(async move { resp })
    })
}

#[tokio::test]
async fn mode_0600_whatever_the_umask() {
    let d = Dir::new("umask");
    let path = d.0.join("pmipd.sock");
    // SAFETY: umask has no preconditions (process-wide: only this test sets it).
    let old = unsafe { libc::umask(0) };
    let r = bind(&path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = r.unwrap();
    assert_eq!(mode(&path), 0o600);
    // No staging directory is left behind; the lock file is 0600 too.
    let names: Vec<String> = std::fs::read_dir(&d.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(mode(&d.0.join("pmipd.sock.lock")), 0o600);
    drop(l);
    assert!(!path.exists(), "removed on drop");
}

#[tokio::test]
async fn mode_0660_with_a_group() {
    let d = Dir::new("group");
    let path = d.0.join("pmipd.sock");
    let l = bind_with(&path, Some(4242)).unwrap();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!((m.permissions().mode() & 0o777, m.gid()), (0o660, 4242));
    drop(l);
}

#[tokio::test]
async fn a_second_daemon_is_refused_and_the_first_keeps_its_socket() {
    let d = Dir::new("second");
    let path = d.0.join("pmipd.sock");
    let first = bind(&path).unwrap();
    let server = tokio::spawn(serve(first, echo()));
    let e = bind(&path).unwrap_err().to_string();
    assert!(e.contains("another pmipd is running"), "{e}");
    // The first daemon is still reachable at its path.
    assert_eq!(
        request(&path, &Request::ShowTunnels).await.unwrap(),
        Response::Tunnels(vec![])
    );
    server.abort();
    let _ = server.await;
    assert!(!path.exists(), "the first daemon's socket goes with it");
    // Now the path is free.
    drop(bind(&path).unwrap());
}

#[tokio::test]
async fn a_live_socket_of_another_kind_of_server_is_not_taken_over() {
    let d = Dir::new("live");
    let path = d.0.join("pmipd.sock");
    // Listening, but without the lock (an older pmipd, or another program).
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let e = bind(&path).unwrap_err().to_string();
    assert!(e.contains("already serving"), "{e}");
    drop(other);
    // Stale now: replaced.
    let l = bind(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    drop(l);
}

#[tokio::test]
async fn a_directory_others_can_write_is_refused() {
    let d = Dir::new("world");
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let e = bind(&d.0.join("pmipd.sock")).unwrap_err().to_string();
    assert!(e.contains("writable by others (mode 1777)"), "{e}");
    // A missing directory is created, root-only writable.
    let sub = d.0.join("run").join("pmip");
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let l = bind(&sub.join("pmipd.sock")).unwrap();
    assert_eq!(mode(&sub) & 0o022, 0);
    drop(l);
}

/// What pmipctl does with a 100 KB NAI: one line, then it waits for the
/// answer without closing its side. It gets an error, not a reset.
#[tokio::test]
async fn an_oversized_request_gets_an_error_not_a_reset() {
    let d = Dir::new("big");
    let path = d.0.join("pmipd.sock");
    let server = tokio::spawn(serve(bind(&path).unwrap(), echo()));
    for nai_len in [100_000, 1_000_000] {
        let req = Request::ClearBinding {
            nai: "x".repeat(nai_len),
        };
        let p = path.clone();
        let r =
            tokio::task::spawn_blocking(move || request_blocking(&p, &req, Duration::from_secs(5)))
                .await
                .unwrap()
                .unwrap();
        let Response::Error { message } = r else {
            panic!("{r:?}")
        };
        assert!(
            message.starts_with("request longer than 65536 bytes"),
            "{message}"
        );
    }
    // Just under the limit is still a request.
    let req = Request::ClearBinding {
        nai: "y".repeat(MAX_REQUEST - 64),
    };
    assert!(matches!(
        request(&path, &req).await.unwrap(),
        Response::Cleared { .. }
    ));
    server.abort();
}

#[test]
fn who_may_connect() {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    assert!(allowed((0, 0), None));
    assert!(allowed((me, 1000), None));
    let other = if me == 65534 { 1000 } else { 65534 };
    assert!(!allowed((other, 65534), None));
    assert!(allowed((other, 65534), Some(4242)));
}
