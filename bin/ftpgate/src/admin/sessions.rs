//! `/api/sessions`: the live sessions as JSON, with totals.

use std::time::SystemTime;

use ftpgate::SessionInfo;
use serde_json::{Value, json};

/// RFC 3339 in UTC, to the millisecond.
fn rfc3339(time: SystemTime) -> Value {
    match jiff::Timestamp::try_from(time) {
        Ok(ts) => Value::String(ts.round(jiff::Unit::Millisecond).unwrap_or(ts).to_string()),
        Err(_) => Value::Null,
    }
}

/// The JSON document of `sessions`.
pub(super) fn json(sessions: &[SessionInfo]) -> String {
    let mut rate = 0.0;
    let mut transfers = 0;
    let list: Vec<Value> = sessions
        .iter()
        .map(|s| {
            let transfer = s.transfer.as_ref().map(|t| {
                rate += t.rate;
                transfers += 1;
                json!({
                    "command": t.command,
                    "path": t.path,
                    "bytes": t.bytes,
                    "size": t.size,
                    "rate": (t.rate * 10.0).round() / 10.0,
                    "started": rfc3339(t.started),
                })
            });
            json!({
                "id": s.id.as_u64(),
                "user": s.user,
                "client": s.client.to_string(),
                "listener": s.listener.to_string(),
                "tls": { "control": s.tls_control, "data": s.tls_data },
                "since": rfc3339(s.since),
                "last_command": s.last_command,
                "transfer": transfer,
            })
        })
        .collect();
    let doc = json!({
        "sessions": list,
        "totals": {
            "sessions": sessions.len(),
            "logged_in": sessions.iter().filter(|s| s.user.is_some()).count(),
            "transfers": transfers,
            "rate": (rate * 10.0_f64).round() / 10.0,
        },
        "now": rfc3339(SystemTime::now()),
    });
    doc.to_string()
}
