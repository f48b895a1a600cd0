//! INFO's Commandstats and Errorstats: per command Keyway serves, calls,
//! time spent, calls refused before running (arity) and calls that answered
//! an error; per error code, how many error replies. Process-wide, sharded
//! per thread like every hot counter ([`Counter`]).

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use keyway_protocol::resp::Reply;

use super::commands::{CommandSpec, COMMANDS};
use crate::metrics::Counter;

#[derive(Default)]
struct Figures {
    calls: Counter,
    micros: Counter,
    rejected: Counter,
    failed: Counter,
}

static COMMAND_FIGURES: LazyLock<Vec<Figures>> =
    LazyLock::new(|| COMMANDS.iter().map(|_| Figures::default()).collect());

/// Error replies by their code (the first word: ERR, WRONGTYPE, NOAUTH...).
static ERRORS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// The figures of `spec`, by its place in `COMMANDS` (specs are only ever
/// borrowed from that table), without a search.
fn figures(spec: &'static CommandSpec) -> &'static Figures {
    let base = COMMANDS.as_ptr() as usize;
    let index = (spec as *const CommandSpec as usize - base) / std::mem::size_of::<CommandSpec>();
    &COMMAND_FIGURES[index]
}

/// Counts one command's answer: `spec` when Keyway knows the command,
/// `ran` when it got past the arity check.
pub fn record(spec: Option<&'static CommandSpec>, started: Instant, ran: bool, reply: &Reply) {
    let error = match reply {
        Reply::Error(text) => Some(text),
        _ => None,
    };
    if let Some(text) = error {
        let code = text.split(' ').next().unwrap_or("ERR").to_string();
        *ERRORS
            .lock()
            .expect("not poisoned")
            .entry(code)
            .or_default() += 1;
    }
    let Some(spec) = spec else { return };
    let figures = figures(spec);
    if !ran {
        figures.rejected.add(1);
        return;
    }
    figures.calls.add(1);
    figures
        .micros
        .add(started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
    if error.is_some() {
        figures.failed.add(1);
    }
}

/// `cmdstat_<name>:calls=..,usec=..,usec_per_call=..,rejected_calls=..,failed_calls=..`
/// for every command called or refused since start (or the last reset).
pub fn command_lines() -> Vec<(String, String)> {
    COMMANDS
        .iter()
        .zip(COMMAND_FIGURES.iter())
        .filter_map(|(spec, figures)| {
            let (calls, rejected) = (figures.calls.get(), figures.rejected.get());
            if calls == 0 && rejected == 0 {
                return None;
            }
            let micros = figures.micros.get();
            let per_call = if calls == 0 {
                0.0
            } else {
                micros as f64 / calls as f64
            };
            Some((
                format!("cmdstat_{}", spec.name),
                format!(
                    "calls={calls},usec={micros},usec_per_call={per_call:.2},\
                     rejected_calls={rejected},failed_calls={}",
                    figures.failed.get()
                ),
            ))
        })
        .collect()
}

/// `errorstat_<CODE>:count=..`
pub fn error_lines() -> Vec<(String, String)> {
    ERRORS
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|(code, count)| (format!("errorstat_{code}"), format!("count={count}")))
        .collect()
}

/// Every error reply counted (INFO's `total_error_replies`).
pub fn error_total() -> u64 {
    ERRORS.lock().expect("not poisoned").values().sum()
}

/// `CONFIG RESETSTAT` and memcached's `stats reset`.
pub fn reset() {
    for figures in COMMAND_FIGURES.iter() {
        figures.calls.reset();
        figures.micros.reset();
        figures.rejected.reset();
        figures.failed.reset();
    }
    ERRORS.lock().expect("not poisoned").clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_finds_its_own_figures() {
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert!(
                std::ptr::eq(figures(spec), &COMMAND_FIGURES[i]),
                "{}",
                spec.name
            );
        }
    }
}
