//! The little HTTP/1.1 the endpoint needs: `GET /metrics` (and `HEAD`),
//! one response per connection. Requests are bounded in size, time and
//! number at once, so a misbehaving client cannot tie the daemon up.
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::export::Format;
use super::Source;

/// Longest request head read.
const MAX_HEAD: usize = 8192;
/// Connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 8;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn serve(listener: TcpListener, src: Arc<Source>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("metrics accept: {e}");
                continue;
            }
        };
        let src = src.clone();
        tokio::spawn(async move {
            if let Err(e) = one(stream, &src).await {
                tracing::debug!("metrics connection: {e}");
            }
            drop(permit);
        });
    }
}

/// A request's method, path and Accept header.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub method: String,
    pub path: String,
    pub accept: Option<String>,
}

/// Parses a request head (up to the blank line); None if it is not HTTP/1.x.
pub(super) fn parse_head(head: &str) -> Option<Head> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if !version.starts_with("HTTP/1.") || first.next().is_some() {
        return None;
    }
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("accept"))
        .map(|(_, v)| v.trim().to_string());
    let path = target.split('?').next().unwrap_or(target).to_string();
    Some(Head {
        method: method.to_string(),
        path,
        accept,
    })
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

async fn one(mut stream: TcpStream, src: &Source) -> std::io::Result<()> {
    let text = "text/plain; charset=utf-8";
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => {
            return respond(&mut stream, "400 Bad Request", text, "bad request\n", false).await
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let Some(h) = parse_head(&head) else {
        return respond(&mut stream, "400 Bad Request", text, "bad request\n", false).await;
    };
    let head_only = h.method == "HEAD";
    if h.method != "GET" && !head_only {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            text,
            "GET /metrics\n",
            false,
        )
        .await;
    }
    match h.path.as_str() {
        "/metrics" => {
            let format = Format::from_accept(h.accept.as_deref());
            match src.scrape(format).await {
                Ok(body) => {
                    respond(
                        &mut stream,
                        "200 OK",
                        format.content_type(),
                        &body,
                        head_only,
                    )
                    .await
                }
                Err(e) => {
                    let msg = format!("{e:#}\n");
                    respond(
                        &mut stream,
                        "503 Service Unavailable",
                        text,
                        &msg,
                        head_only,
                    )
                    .await
                }
            }
        }
        "/" => {
            respond(
                &mut stream,
                "200 OK",
                text,
                "pmipd: metrics at /metrics\n",
                head_only,
            )
            .await
        }
        _ => {
            respond(
                &mut stream,
                "404 Not Found",
                text,
                "not found; GET /metrics\n",
                head_only,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        let h = parse_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0").unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/metrics");
        assert_eq!(
            Format::from_accept(h.accept.as_deref()),
            Format::OpenMetrics
        );
        let h = parse_head("GET /metrics HTTP/1.0").unwrap();
        assert_eq!(Format::from_accept(h.accept.as_deref()), Format::Prometheus);
        assert_eq!(parse_head("GET /metrics"), None);
        assert_eq!(parse_head("GET /metrics SPDY/3"), None);
        assert_eq!(parse_head(""), None);
        assert_eq!(parse_head("\u{0}\u{1}"), None);
    }
}
