//! A small HTTP/1.1 client for celld's unix socket, with JSON requests and
//! a streaming reader for the framed output of `attach`.
//!
//! An attach ends in one of three ways, each one line for `main` to print:
//! the exit frame (the process's exit code), an error frame (celld's own
//! words, e.g. `cell_api::DAEMON_STOPPED` when it shuts down), or a stream
//! that breaks or just ends ([`LOST_DAEMON`]: celld was killed).
//!
//! An interactive attach ([`Client::attach_interactive`]) upgrades the
//! connection to `cell-attach` (see `cell_api`'s attach module) and sends
//! stdin, end of input and window sizes as frames while it reads the same
//! output stream.

use anyhow::{Context, Result, anyhow, bail};
use cell_core::frame::{self, FrameKind};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What an attached client says when celld vanished without a word (it was
/// killed): the process goes on under its supervisor all the same.
pub const LOST_DAEMON: &str = "lost the connection to celld; the container is still running";

/// What an interactive client says when SIGTERM or SIGHUP stops it.
pub const STOPPED_BY_SIGNAL: &str = "cell was stopped by a signal; the container is still running";

/// An error the daemon answered with; its message is shown as it is.
#[derive(Debug)]
pub struct ApiError {
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for `-H unix:///PATH`.
    pub fn new(host: &str) -> Result<Self> {
        let path = host
            .strip_prefix("unix://")
            .ok_or_else(|| anyhow!("invalid host '{host}': expected unix:///PATH"))?;
        if !path.starts_with('/') {
            bail!("invalid host '{host}': expected unix:///PATH with an absolute path");
        }
        Ok(Self { socket: path.into() })
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Response<Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .with_context(|| {
                format!(
                    "cannot connect to celld at {} (is celld running?)",
                    self.socket.display()
                )
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = Request::builder()
            .method(&method)
            .uri(path)
            .header("host", "celld")
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        match sender.send_request(request).await {
            Ok(response) => Ok(response),
            // celld stopped or died with the request in hand: it does not
            // wait for slow requests when it shuts down.
            Err(e) if e.is_incomplete_message() || e.is_canceled() => {
                bail!("celld went away before answering {method} {path}")
            }
            Err(e) => Err(e).with_context(|| format!("request to celld failed: {path}")),
        }
    }

    /// Sends a request and returns the JSON answer, or the daemon's error.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("celld sent a response that is not JSON ({status})"))?;
        if !status.is_success() {
            let message = value["message"].as_str().unwrap_or("unknown error").to_string();
            return Err(ApiError { message }.into());
        }
        Ok(value)
    }

    /// Streams an exec's output to our stdout and stderr; returns its exit code.
    pub async fn attach(&self, exec_id: &str) -> Result<i32> {
        let response = self
            .send(Method::GET, &format!("/execs/{exec_id}/attach"), None)
            .await?;
        follow_frames(response, Output::default(), "attach failed").await
    }

    /// Attaches to an exec through the `cell-attach` upgrade: prints its
    /// output as [`Client::attach`] does, sends our stdin (when
    /// `forward_stdin`) and, with `follow_window`, the terminal's size now
    /// and on every SIGWINCH. Returns the exit code.
    pub async fn attach_interactive(
        &self,
        exec_id: &str,
        forward_stdin: bool,
        follow_window: bool,
    ) -> Result<i32> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .with_context(|| format!("cannot connect to celld at {}", self.socket.display()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection.with_upgrades());
        let path = format!("/execs/{exec_id}/attach");
        let request = Request::builder()
            .method(Method::GET)
            .uri(&path)
            .header("host", "celld")
            .header(hyper::header::CONNECTION, "Upgrade")
            .header(hyper::header::UPGRADE, cell_api::ATTACH_UPGRADE)
            .body(Full::new(Bytes::new()))?;
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) if e.is_incomplete_message() || e.is_canceled() => {
                bail!("celld went away before answering GET {path}")
            }
            Err(e) => return Err(e).with_context(|| format!("request to celld failed: {path}")),
        };
        if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
            let bytes = response.into_body().collect().await?.to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let message = value["message"].as_str().unwrap_or("attach failed").to_string();
            return Err(ApiError { message }.into());
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .context("celld did not switch to cell-attach")?;
        let (mut from_daemon, mut to_daemon) = tokio::io::split(TokioIo::new(upgraded));

        let (frames, mut outgoing) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        if follow_window {
            let frames = frames.clone();
            let mut changes = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
            tokio::spawn(async move {
                loop {
                    if let Some((rows, cols)) = crate::terminal::window_size()
                        && frames.send(frame::resize_frame(rows, cols)).await.is_err()
                    {
                        return;
                    }
                    if changes.recv().await.is_none() {
                        return;
                    }
                }
            });
        }
        if forward_stdin {
            forward_stdin_frames(frames);
        } else {
            drop(frames);
        }
        tokio::spawn(async move {
            while let Some(bytes) = outgoing.recv().await {
                if to_daemon.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });

        // A client stopped by a signal returns an error like any other, so
        // that the caller's raw-mode guard restores the terminal.
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut output = Output::default();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                read = from_daemon.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => bail!(LOST_DAEMON),
                    Ok(n) => {
                        if let Some(end) = output.take(&chunk[..n]) {
                            return end;
                        }
                    }
                },
                _ = terminate.recv() => bail!(STOPPED_BY_SIGNAL),
                _ = hangup.recv() => bail!(STOPPED_BY_SIGNAL),
            }
        }
    }
}

/// Reads our stdin on a thread of its own (a blocking read; the thread
/// ends with the process) and sends it as stdin frames, then one end of
/// input frame.
fn forward_stdin_frames(frames: tokio::sync::mpsc::Sender<Vec<u8>>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let mut out = Vec::new();
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    frame::encode(FrameKind::StdinEof, &[], &mut out);
                    let _ = frames.blocking_send(out);
                    return;
                }
                Ok(n) => {
                    frame::encode(FrameKind::Stdin, &buf[..n], &mut out);
                    if frames.blocking_send(out).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// The output side of an attach: frames in, bytes to our stdout and
/// stderr, until the stream's last frame.
#[derive(Default)]
struct Output {
    buffer: Vec<u8>,
    /// End (with 0) once our stdout is closed, rather than go on for the
    /// exit code.
    ends_when_stdout_closes: bool,
}

impl Output {
    /// Takes the next bytes of the stream; returns how it ended once the
    /// exit or error frame has come.
    fn take(&mut self, data: &[u8]) -> Option<Result<i32>> {
        self.buffer.extend_from_slice(data);
        let mut rest = &self.buffer[..];
        let mut end = None;
        loop {
            let before = rest;
            match frame::read_frame(&mut rest) {
                Ok(Some((kind, payload))) => match kind {
                    FrameKind::Stdout => {
                        let mut stdout = std::io::stdout();
                        let written = stdout.write_all(&payload).and_then(|()| stdout.flush());
                        if written.is_err() && self.ends_when_stdout_closes {
                            end = Some(Ok(0));
                            break;
                        }
                    }
                    FrameKind::Stderr => write_all(&mut std::io::stderr(), &payload),
                    FrameKind::Exit => {
                        end = Some(frame::exit_code(&payload).map_err(anyhow::Error::from));
                        break;
                    }
                    FrameKind::Error => {
                        end = Some(Err(anyhow!("{}", String::from_utf8_lossy(&payload))));
                        break;
                    }
                    // Input kinds never come from celld; skip them.
                    FrameKind::Stdin | FrameKind::StdinEof | FrameKind::Resize => {}
                },
                // An incomplete frame: wait for more bytes.
                Ok(None) | Err(_) => {
                    rest = before;
                    break;
                }
            }
        }
        let consumed = self.buffer.len() - rest.len();
        self.buffer.drain(..consumed);
        end
    }
}

impl Client {
    /// Prints the frames of a `GET /containers/{reference}/logs` at `path`
    /// until the end-of-logs frame.
    pub async fn logs(&self, path: &str) -> Result<()> {
        let response = self.send(Method::GET, path, None).await?;
        // Unlike an attach, nothing is waited for but the output: a reader
        // that went away (`cell logs -f | head`) ends it, as a broken pipe
        // does for tail -f. The exit frame ends the logs.
        let output = Output {
            ends_when_stdout_closes: true,
            ..Output::default()
        };
        follow_frames(response, output, "logs failed").await.map(|_| ())
    }
}

/// Prints a framed response's output until its exit or error frame (or,
/// for an error status, returns celld's message, `failing` if it has none).
/// celld ends a stream with an exit or error frame, even when it stops; a
/// stream that just ends is a daemon that died.
async fn follow_frames(response: Response<Incoming>, mut output: Output, failing: &str) -> Result<i32> {
    if !response.status().is_success() {
        let bytes = response.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = value["message"].as_str().unwrap_or(failing).to_string();
        return Err(ApiError { message }.into());
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.frame().await {
        let Ok(chunk) = chunk else { bail!(LOST_DAEMON) };
        let Some(data) = chunk.data_ref() else { continue };
        if let Some(end) = output.take(data) {
            return end;
        }
    }
    bail!(LOST_DAEMON)
}

fn write_all(out: &mut impl Write, data: &[u8]) {
    // A closed pipe on our side (`cell run ... | head`) must not stop the
    // stream: the exit code still matters.
    let _ = out.write_all(data);
    let _ = out.flush();
}
