//! How `cell` shows things: the container, image and network tables, and
//! relative times.

use chrono::{DateTime, Utc};
use comfy_table::{LineStyle, Table, TableStyle};
use serde_json::Value;
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
        ]);
    }
    table.to_string()
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
            "─",
        ] {
            assert!(out.contains(word), "{word} missing from\n{out}");
        }
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
}
