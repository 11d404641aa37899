//! Text the operator reads: the status of one offer, the list of offers. Pure (time injected).

use jiff::Timestamp;
use obol_api::condition::{Condition, types};
use obol_api::{ServiceOffer, condition};

/// Conditions in the order they gate an offer; others follow alphabetically.
const ORDER: [&str; 5] = [
    types::UPSTREAM_HEALTHY,
    types::PAYMENT_GATE_READY,
    types::ROUTE_PUBLISHED,
    types::REGISTERED,
    types::READY,
];

/// A kubectl-style age: `45s`, `12m`, `3h`, `2d`; `<unknown>` when unparseable.
pub fn age(since: Option<&str>, now: Timestamp) -> String {
    let Some(t) = since.and_then(|s| s.parse::<Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = now.as_second().saturating_sub(t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn sorted_conditions(conditions: &[Condition]) -> Vec<&Condition> {
    let mut list: Vec<&Condition> = conditions.iter().collect();
    list.sort_by_key(|c| {
        let rank = ORDER
            .iter()
            .position(|t| *t == c.type_)
            .unwrap_or(ORDER.len());
        (rank, c.type_.clone())
    });
    list
}

/// `obol sell status NAME`: the offer's summary and a table of every condition.
pub fn status(offer: &ServiceOffer, now: Timestamp) -> String {
    let ns = offer.metadata.namespace.as_deref().unwrap_or("default");
    let name = offer.metadata.name.as_deref().unwrap_or_default();
    let status = offer.status.clone().unwrap_or_default();
    let dash = |v: Option<String>| v.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into());
    let phase = status.phase.map(|p| p.as_str().to_owned());
    let generation = match (offer.metadata.generation, status.observed_generation) {
        (Some(g), Some(o)) if g == o => format!("{g} (observed)"),
        (Some(g), Some(o)) => format!("{g} (controller has seen {o})"),
        (Some(g), None) => format!("{g} (not reconciled yet)"),
        _ => "-".into(),
    };
    let mut out = format!("ServiceOffer {ns}/{name}\n");
    let fields = [
        ("Phase", dash(phase)),
        ("Endpoint", dash(status.endpoint.clone())),
        ("Agent ID", dash(status.agent_id.clone())),
        ("Registration tx", dash(status.registration_tx_hash.clone())),
        ("Generation", generation),
    ];
    for (k, v) in fields {
        out.push_str(&format!("  {:<17}{v}\n", format!("{k}:")));
    }
    out.push('\n');
    if status.conditions.is_empty() {
        out.push_str("No conditions yet: the controller has not reconciled this offer.\n");
        return out;
    }
    let mut rows = vec![vec![
        "TYPE".into(),
        "STATUS".into(),
        "REASON".into(),
        "AGE".into(),
        "MESSAGE".into(),
    ]];
    for c in sorted_conditions(&status.conditions) {
        rows.push(vec![
            c.type_.clone(),
            c.status.as_str().into(),
            dash(Some(c.reason.clone())),
            age(c.last_transition_time.as_deref(), now),
            dash(Some(c.message.clone())),
        ]);
    }
    out.push_str(&table(&rows));
    out
}

/// The condition that holds the offer back, for messages: the first required one not True.
pub fn blocking(offer: &ServiceOffer) -> Option<Condition> {
    let conditions = offer
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    condition::READY_REQUIRES
        .iter()
        .find(|t| !condition::is_true(conditions, t))
        .map(|t| {
            condition::find(conditions, t).cloned().unwrap_or_else(|| {
                Condition::new(t, condition::ConditionStatus::Unknown, "NotReported", "")
            })
        })
}

/// `obol sell list`: one line per offer.
pub fn list(offers: &[ServiceOffer], now: Timestamp) -> String {
    if offers.is_empty() {
        return "No ServiceOffers found.\n".into();
    }
    let mut rows = vec![
        [
            "NAMESPACE",
            "NAME",
            "TYPE",
            "PRICE",
            "NETWORK",
            "PHASE",
            "READY",
            "AGE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for so in offers {
        let p = &so.spec.payment.price;
        let split = |input: &Option<String>, output: &Option<String>| {
            let side = |v: &Option<String>| v.as_ref().or(p.per_mtok.as_ref()).cloned();
            format!(
                "{} in, {} out /MTok",
                side(input).unwrap_or_else(|| "0".into()),
                side(output).unwrap_or_else(|| "0".into())
            )
        };
        let price = match (&p.per_request, &p.per_mtok, &p.per_hour) {
            (Some(v), _, _) => v.clone(),
            _ if p.per_mtok_input.is_some() || p.per_mtok_output.is_some() => {
                split(&p.per_mtok_input, &p.per_mtok_output)
            }
            (None, Some(v), _) => format!("{v}/MTok"),
            (None, None, Some(v)) => format!("{v}/h"),
            _ => "-".into(),
        };
        let status = so.status.clone().unwrap_or_default();
        let ready =
            condition::find(&status.conditions, types::READY).map_or("-", |c| c.status.as_str());
        let created = so
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string());
        rows.push(vec![
            so.metadata.namespace.clone().unwrap_or_default(),
            so.metadata.name.clone().unwrap_or_default(),
            serde_json::to_value(so.spec.type_)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            price,
            so.spec.payment.network.clone(),
            status.phase.map_or("-", |p| p.as_str()).to_owned(),
            ready.to_owned(),
            age(created.as_deref(), now),
        ]);
    }
    table(&rows)
}

#[cfg(test)]
mod tests;
