//! How `cell` shows things: the container, image and network tables,
//! relative times, and the same lists as JSON for scripts.
//!
//! The JSON of a list is built here field by field from what celld answers,
//! not passed through, so that its field names stay as the README documents
//! them whatever the API's own types become.

use chrono::{DateTime, Utc};
use comfy_table::{LineStyle, Table, TableStyle};
use serde_json::{Value, json};
use std::collections::HashMap;

/// "2 hours ago", as `lsc` shows CREATED.
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    let (n, unit) = match secs {
        0..=1 => return "just now".into(),
        2..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        86_400..=2_591_999 => (secs / 86_400, "day"),
        2_592_000..=31_535_999 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    if n == 1 {
        let article = if unit == "hour" { "an" } else { "a" };
        format!("{article} {unit} ago")
    } else {
        format!("{n} {unit}s ago")
    }
}

/// Kleene's table: a header, a rule under it, no borders.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─')));
    table.set_header(header.to_vec());
    table
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The `lsc` table from the containers and images the daemon listed.
pub fn containers_table(containers: &[Value], images: &[Value], now: DateTime<Utc>) -> String {
    let image_names: HashMap<String, String> = images
        .iter()
        .map(|i| (text(&i["id"]), text(&i["name"])))
        .collect();
    let mut table = table(&[
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PID",
        "PORTS",
    ]);
    for c in containers {
        let image_id = text(&c["image_id"]);
        let cmd: Vec<String> = c["cmd"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        let created = text(&c["created"])
            .parse::<DateTime<Utc>>()
            .map(|t| ago(t, now))
            .unwrap_or_default();
        let status = if c["running"] == Value::Bool(true) {
            "running"
        } else {
            "stopped"
        };
        table.add_row(vec![
            text(&c["id"]),
            text(&c["name"]),
            image_names.get(&image_id).cloned().unwrap_or(image_id),
            cmd.join(" "),
            created,
            status.to_string(),
            text(&c["pid"]),
            ports_cell(&c["public_ports"]),
        ]);
    }
    table.to_string()
}

/// The PORTS cell of `lsc`: `ADDR:HOST->CONTAINER/PROTO` per mapping, as
/// Docker writes them, `ADDR` left out when published on all addresses,
/// and a run of consecutive ports (a `-p` range) as one
/// `8000-8010->9000-9010/udp`.
fn ports_cell(ports: &Value) -> String {
    struct Run {
        host: String,
        first: (u64, u64),
        last: (u64, u64),
        protocol: String,
    }
    let mut runs: Vec<Run> = Vec::new();
    for p in ports.as_array().into_iter().flatten() {
        let host = match p["host_ip"].as_str() {
            Some(ip) if ip.contains(':') => format!("[{ip}]:"),
            Some(ip) => format!("{ip}:"),
            None => String::new(),
        };
        let pair = (
            p["host_port"].as_u64().unwrap_or_default(),
            p["container_port"].as_u64().unwrap_or_default(),
        );
        let protocol = text(&p["protocol"]);
        if let Some(run) = runs.last_mut()
            && run.host == host
            && run.protocol == protocol
            && pair == (run.last.0 + 1, run.last.1 + 1)
        {
            run.last = pair;
            continue;
        }
        runs.push(Run {
            host,
            first: pair,
            last: pair,
            protocol,
        });
    }
    let range = |a: u64, b: u64| if a == b { a.to_string() } else { format!("{a}-{b}") };
    runs.iter()
        .map(|r| {
            format!(
                "{}{}->{}/{}",
                r.host,
                range(r.first.0, r.last.0),
                range(r.first.1, r.last.1),
                r.protocol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `cell port CONTAINER`: pot's lines, `HOST_ADDR port HOST_PORT ->
/// CONTAINER_ADDR port CONTAINER_PORT/PROTO`, from `GET .../ports`.
pub fn port_lines(lines: &Value) -> String {
    let mut out = String::new();
    for l in lines.as_array().into_iter().flatten() {
        let container = match &l["container_addr"] {
            Value::Null => "-".to_string(),
            addr => text(addr),
        };
        out.push_str(&format!(
            "{} port {} -> {container} port {}/{}\n",
            text(&l["host_addr"]),
            text(&l["host_port"]),
            text(&l["container_port"]),
            text(&l["protocol"])
        ));
    }
    out
}

/// One mapping as `-p` writes it: `[HOST_IP:]HOST_PORT:CONTAINER_PORT/PROTO`.
pub fn port_mapping(p: &Value) -> String {
    let host = match p["host_ip"].as_str() {
        Some(ip) if ip.contains(':') => format!("[{ip}]:"),
        Some(ip) => format!("{ip}:"),
        None => String::new(),
    };
    format!(
        "{host}{}:{}/{}",
        text(&p["host_port"]),
        text(&p["container_port"]),
        text(&p["protocol"])
    )
}

/// The `image ls` table.
pub fn images_table(images: &[Value], now: DateTime<Utc>) -> String {
    let mut table = table(&["IMAGE ID", "NAME", "SOURCE", "CREATED"]);
    for i in images {
        let created = text(&i["created"])
            .parse::<DateTime<Utc>>()
            .map(|t| ago(t, now))
            .unwrap_or_default();
        table.add_row(vec![
            text(&i["id"]),
            text(&i["name"]),
            text(&i["source"]),
            created,
        ]);
    }
    table.to_string()
}

/// The `network ls` table; absent subnets are empty cells.
pub fn networks_table(networks: &[Value]) -> String {
    let mut table = table(&["NETWORK ID", "NAME", "TYPE", "INTERFACE", "SUBNET", "SUBNET6"]);
    for n in networks {
        table.add_row(vec![
            text(&n["id"]),
            text(&n["name"]),
            text(&n["type"]),
            text(&n["interface"]),
            text(&n["subnet"]),
            text(&n["subnet6"]),
        ]);
    }
    table.to_string()
}

/// The `lsc --format json` array: one object per container.
pub fn containers_json(containers: &[Value], images: &[Value]) -> Value {
    let image_names: HashMap<&str, &Value> = images
        .iter()
        .filter_map(|i| Some((i["id"].as_str()?, &i["name"])))
        .collect();
    let list = containers.iter().map(|c| {
        let image_id = c["image_id"].as_str().unwrap_or_default();
        let ports: Vec<Value> = c["public_ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                json!({
                    "host_ip": p["host_ip"],
                    "host_port": p["host_port"],
                    "container_port": p["container_port"],
                    "protocol": p["protocol"],
                })
            })
            .collect();
        let running = c["running"] == Value::Bool(true);
        json!({
            "id": c["id"],
            "name": c["name"],
            "image_id": image_id,
            "image": image_names.get(image_id).copied().unwrap_or(&Value::Null),
            "command": c["cmd"],
            "created": c["created"],
            "status": if running { "running" } else { "stopped" },
            "running": running,
            "pid": c["pid"],
            "exit_code": c["exit_code"],
            "driver": c["network_driver"],
            "ports": ports,
        })
    });
    Value::Array(list.collect())
}

/// The `image ls --format json` array.
pub fn images_json(images: &[Value]) -> Value {
    let list = images.iter().map(|i| {
        json!({
            "id": i["id"],
            "name": i["name"],
            "source": i["source"],
            "command": i["cmd"],
            "created": i["created"],
        })
    });
    Value::Array(list.collect())
}

/// The `network ls --format json` array.
pub fn networks_json(networks: &[Value]) -> Value {
    let list = networks.iter().map(|n| {
        json!({
            "id": n["id"],
            "name": n["name"],
            "type": n["type"],
            "interface": n["interface"],
            "subnet": n["subnet"],
            "subnet6": n["subnet6"],
            "gateway": n["gateway"],
            "gateway6": n["gateway6"],
            "nat": n["nat"],
            "icc": n["icc"],
            "internal": n["internal"],
            "antispoof": n["antispoof"],
        })
    });
    Value::Array(list.collect())
}

/// The ids of a list, one per line (`-q`).
pub fn ids(list: &[Value]) -> String {
    list.iter().map(|v| format!("{}\n", text(&v["id"]))).collect()
}

/// `cell version` as text: the client, then the daemon, or a line saying
/// it could not be asked.
pub fn version_text(client: &Value, daemon: Option<&Value>) -> String {
    let mut out = format!(
        "Client:\n Version:     {}\n OS/Arch:     {}/{}\n",
        text(&client["version"]),
        text(&client["os"]),
        text(&client["arch"])
    );
    if let Some(daemon) = daemon {
        out.push_str(&format!(
            "Daemon:\n Version:     {}\n API version: {}\n OS/Arch:     {}/{}\n",
            text(&daemon["version"]),
            text(&daemon["api_version"]),
            text(&daemon["os"]),
            text(&daemon["arch"])
        ));
    }
    out
}

/// `cell info` as text, from the daemon's `GET /info` with the socket the
/// client used added.
pub fn info_text(info: &Value) -> String {
    let pool = |key: &str| match info[key].as_str() {
        Some(pool) => pool.to_string(),
        None => "none configured".to_string(),
    };
    let found = |key: &str| {
        if info["kernel"][key] == Value::Bool(true) {
            "found"
        } else {
            "not found"
        }
    };
    format!(
        "Daemon version: {}\nRoot:           {}\nSocket:         {}\nPool:           {}\n\
         Pool6:          {}\nContainers:     {} ({} running)\nImages:         {}\n\
         Networks:       {}\nKernel features:\n nftables:      {} (table inet cell)\n\
         \x20bridge:        {}\n macvlan:       {}\n br_netfilter:  {}\n",
        text(&info["version"]),
        text(&info["root"]),
        text(&info["socket"]),
        pool("pool"),
        pool("pool6"),
        text(&info["containers"]),
        text(&info["running"]),
        text(&info["images"]),
        text(&info["networks"]),
        found("nftables"),
        found("bridge"),
        found("macvlan"),
        found("br_netfilter"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn relative_times() {
        let now = Utc::now();
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now - Duration::seconds(30), now), "30 seconds ago");
        assert_eq!(ago(now - Duration::minutes(1), now), "a minute ago");
        assert_eq!(ago(now - Duration::hours(2), now), "2 hours ago");
        assert_eq!(ago(now - Duration::hours(1), now), "an hour ago");
        assert_eq!(ago(now - Duration::days(3), now), "3 days ago");
        assert_eq!(ago(now + Duration::hours(1), now), "just now");
    }

    #[test]
    fn container_table_shows_every_column() {
        let containers = vec![serde_json::json!({
            "id": "f455de07ac84", "name": "hungry_knuth", "image_id": "11370bfb4a88",
            "cmd": ["host", "freebsd.org"], "created": (Utc::now() - Duration::hours(2)).to_rfc3339(),
            "running": true, "pid": 42,
            "public_ports": [{"host_ip": null, "host_port": 8080, "container_port": 80, "protocol": "tcp"},
                             {"host_ip": "::1", "host_port": 53, "container_port": 53, "protocol": "udp"},
                             {"host_ip": null, "host_port": 9000, "container_port": 90, "protocol": "tcp"},
                             {"host_ip": null, "host_port": 9001, "container_port": 91, "protocol": "tcp"}],
        })];
        let images = vec![serde_json::json!({"id": "11370bfb4a88", "name": "busybox"})];
        let out = containers_table(&containers, &images, Utc::now());
        for word in [
            "CONTAINER ID",
            "PID",
            "f455de07ac84",
            "hungry_knuth",
            "busybox",
            "host freebsd.org",
            "2 hours ago",
            "running",
            "42",
            "PORTS",
            "8080->80/tcp, [::1]:53->53/udp, 9000-9001->90-91/tcp",
            "─",
        ] {
            assert!(out.contains(word), "{word} missing from\n{out}");
        }
    }

    #[test]
    fn ports_read_as_pot_and_as_the_spec_that_made_them() {
        let lines = serde_json::json!([
            {"host_addr": "0.0.0.0", "host_port": 30080, "container_addr": "10.192.0.11",
             "container_port": 80, "protocol": "tcp"},
            {"host_addr": "::", "host_port": 30080, "container_addr": null,
             "container_port": 80, "protocol": "tcp"},
        ]);
        assert_eq!(
            port_lines(&lines),
            "0.0.0.0 port 30080 -> 10.192.0.11 port 80/tcp\n:: port 30080 -> - port 80/tcp\n"
        );
        let mapping =
            serde_json::json!({"host_ip": "::1", "host_port": 53, "container_port": 5353, "protocol": "udp"});
        assert_eq!(port_mapping(&mapping), "[::1]:53:5353/udp");
    }

    #[test]
    fn network_table_leaves_absent_subnets_empty() {
        let networks = vec![
            serde_json::json!({
                "id": "6b933304be4a", "name": "testnet", "type": "loopback", "interface": "cell0",
                "subnet": "10.2.3.0/24", "subnet6": null,
            }),
            serde_json::json!({
                "id": "0123456789ab", "name": "v6only", "type": "bridge", "interface": "cell1",
                "subnet": null, "subnet6": "fd00::/64",
            }),
        ];
        let out = networks_table(&networks);
        let lines: Vec<&str> = out.lines().collect();
        for word in ["NETWORK ID", "NAME", "TYPE", "INTERFACE", "SUBNET", "SUBNET6"] {
            assert!(lines[0].contains(word), "{word} missing from\n{out}");
        }
        assert!(lines[1].contains('─'));
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row,
            ["6b933304be4a", "testnet", "loopback", "cell0", "10.2.3.0/24"]
        );
        let row: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(row, ["0123456789ab", "v6only", "bridge", "cell1", "fd00::/64"]);
        assert!(!out.contains("null"), "null shown in\n{out}");
    }

    #[test]
    fn json_lists_have_the_documented_fields() {
        let containers = vec![serde_json::json!({
            "id": "f455de07ac84", "name": "hungry_knuth", "image_id": "11370bfb4a88",
            "cmd": ["sleep", "1"], "created": "2026-01-01T00:00:00Z", "running": false,
            "pid": null, "exit_code": 0, "network_driver": "host", "user": "root",
            "public_ports": [{"host_ip": null, "host_port": 8080, "container_port": 80, "protocol": "tcp"}],
        })];
        let images = vec![serde_json::json!({"id": "11370bfb4a88", "name": "busybox"})];
        let out = containers_json(&containers, &images);
        let c = &out[0];
        assert_eq!(c["image"], "busybox");
        assert_eq!(c["status"], "stopped");
        assert_eq!(c["command"], serde_json::json!(["sleep", "1"]));
        assert_eq!(c["ports"][0]["container_port"], 80);
        assert!(c.get("user").is_none(), "fields not documented leak: {c}");
        let mut keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "command",
                "created",
                "driver",
                "exit_code",
                "id",
                "image",
                "image_id",
                "name",
                "pid",
                "ports",
                "running",
                "status"
            ]
        );
        assert_eq!(ids(&containers), "f455de07ac84\n");
        assert_eq!(ids(&[]), "");
    }

    #[test]
    fn info_text_says_what_is_missing() {
        let info = serde_json::json!({
            "version": "0.1.0", "root": "/var/lib/cell", "socket": "/run/cell/celld.sock",
            "pool": null, "pool6": null, "containers": 3, "running": 1, "images": 2, "networks": 1,
            "kernel": {"nftables": true, "bridge": true, "macvlan": false, "br_netfilter": false},
        });
        let out = info_text(&info);
        for line in [
            "Root:           /var/lib/cell",
            "Pool:           none configured",
            "Containers:     3 (1 running)",
            " nftables:      found (table inet cell)",
            " bridge:        found",
            " macvlan:       not found",
        ] {
            assert!(out.lines().any(|l| l == line), "{line:?} missing from\n{out}");
        }
    }
}
