//! A small HTTP/1.1 client for celld's unix socket, with JSON requests and
//! a streaming reader for the framed output of `attach`.
//!
//! An attach ends in one of three ways, each one line for `main` to print:
//! the exit frame (the process's exit code), an error frame (celld's own
//! words, e.g. `cell_api::DAEMON_STOPPED` when it shuts down), or a stream
//! that breaks or just ends ([`LOST_DAEMON`]: celld was killed).

use anyhow::{Context, Result, anyhow, bail};
use cell_core::frame::{self, FrameKind};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

/// What an attached client says when celld vanished without a word (it was
/// killed): the process goes on under its supervisor all the same.
pub const LOST_DAEMON: &str = "lost the connection to celld; the container is still running";

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
        if !response.status().is_success() {
            let bytes = response.into_body().collect().await?.to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let message = value["message"].as_str().unwrap_or("attach failed").to_string();
            return Err(ApiError { message }.into());
        }
        let mut body = response.into_body();
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(chunk) = body.frame().await {
            let Ok(chunk) = chunk else { bail!(LOST_DAEMON) };
            let Some(data) = chunk.data_ref() else { continue };
            buffer.extend_from_slice(data);
            let mut rest = &buffer[..];
            loop {
                let before = rest;
                match frame::read_frame(&mut rest) {
                    Ok(Some((kind, payload))) => match kind {
                        FrameKind::Stdout => write_all(&mut std::io::stdout(), &payload),
                        FrameKind::Stderr => write_all(&mut std::io::stderr(), &payload),
                        FrameKind::Exit => return Ok(frame::exit_code(&payload)?),
                        FrameKind::Error => bail!("{}", String::from_utf8_lossy(&payload)),
                    },
                    // An incomplete frame: wait for more bytes.
                    Ok(None) | Err(_) => {
                        rest = before;
                        break;
                    }
                }
            }
            let consumed = buffer.len() - rest.len();
            buffer.drain(..consumed);
        }
        // celld ends a stream with an exit or error frame, even when it
        // stops; a stream that just ends is a daemon that died.
        bail!(LOST_DAEMON)
    }
}

impl Client {
    /// Prints the frames of a `GET /containers/{reference}/logs` at `path`
    /// until the end-of-logs frame.
    pub async fn logs(&self, path: &str) -> Result<()> {
        let response = self.send(Method::GET, path, None).await?;
        if !response.status().is_success() {
            let bytes = response.into_body().collect().await?.to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let message = value["message"].as_str().unwrap_or("logs failed").to_string();
            return Err(ApiError { message }.into());
        }
        let mut body = response.into_body();
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(chunk) = body.frame().await {
            let Ok(chunk) = chunk else { bail!(LOST_DAEMON) };
            let Some(data) = chunk.data_ref() else { continue };
            buffer.extend_from_slice(data);
            let mut rest = &buffer[..];
            // An incomplete frame stays in the buffer until more bytes come.
            let mut peek = rest;
            while let Ok(Some((kind, payload))) = frame::read_frame(&mut peek) {
                rest = peek;
                match kind {
                    // Unlike an attach, nothing is waited for but the
                    // output: a reader that went away (`cell logs -f |
                    // head`) ends it, as a broken pipe does for tail -f.
                    FrameKind::Stdout => {
                        let mut stdout = std::io::stdout();
                        if stdout.write_all(&payload).and_then(|()| stdout.flush()).is_err() {
                            return Ok(());
                        }
                    }
                    FrameKind::Stderr => write_all(&mut std::io::stderr(), &payload),
                    FrameKind::Exit => return Ok(()),
                    FrameKind::Error => bail!("{}", String::from_utf8_lossy(&payload)),
                }
            }
            let consumed = buffer.len() - rest.len();
            buffer.drain(..consumed);
        }
        bail!(LOST_DAEMON)
    }
}

fn write_all(out: &mut impl Write, data: &[u8]) {
    // A closed pipe on our side (`cell run ... | head`) must not stop the
    // stream: the exit code still matters.
    let _ = out.write_all(data);
    let _ = out.flush();
}
