//! celld and the API: socket, OpenAPI document, error shapes, one daemon per
//! root, and a client that cannot reach it.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn serves_openapi_and_json_errors() {
    require_root!();
    let sb = Sandbox::new();
    let mode = std::fs::metadata(&sb.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode");

    let (status, body) = sb.http_get("/openapi.json");
    assert!(status.contains("200"), "{status}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/containers"].is_object());

    let (status, body) = sb.http_get("/containers/nosuchthing");
    assert!(status.contains("404"), "{status}");
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["message"], "no such container: nosuchthing");
}

#[test]
fn bad_request_bodies_are_400_with_a_message() {
    require_root!();
    let sb = Sandbox::new();
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&sb.socket).unwrap();
    let body = "{\"image\": 42}";
    write!(
        s,
        "POST /containers HTTP/1.1\r\nHost: celld\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("\"message\":\"invalid request body"),
        "{response}"
    );
}

#[test]
fn a_second_celld_on_the_same_root_refuses_to_start() {
    require_root!();
    let sb = Sandbox::new();
    let other_socket = sb.dir.path().join("other.sock");
    let out = sb
        .in_ns(CELLD)
        .args([
            "--root",
            sb.root.to_str().unwrap(),
            "--socket",
            other_socket.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another celld is already running with root"),
        "{stderr}"
    );
    assert!(!other_socket.exists());
    // The first one still answers.
    sb.ok(&["lsc"]);
}

#[test]
fn an_unreachable_daemon_is_named_in_one_line() {
    let out = std::process::Command::new(CELL)
        .args(["-H", "unix:///nonexistent/cell.sock", "lsc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot connect to celld at /nonexistent/cell.sock"),
        "{stderr}"
    );

    let out = std::process::Command::new(CELL)
        .env("CELL_HOST", "unix:///elsewhere.sock")
        .arg("lsc")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/elsewhere.sock"));

    let out = std::process::Command::new(CELL)
        .args(["-H", "tcp://1.2.3.4:5", "lsc"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid host 'tcp://1.2.3.4:5'"));
}

#[test]
fn cell_host_variable_selects_the_socket() {
    require_root!();
    let sb = Sandbox::new();
    let out = std::process::Command::new(CELL)
        .env("CELL_HOST", format!("unix://{}", sb.socket.display()))
        .args(["lsc", "-a"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CONTAINER ID"));
}
