//! The gateway's worst-case memory, from its settings, checked against a budget at
//! start-up: a setting that could let clients push the process past its limit is a
//! configuration error, not a surprise under attack.
//!
//! Worst case = the body budget full, every in-flight request's own state, every
//! connection open with a full read buffer, and the process's baseline. The per-item
//! figures are upper bounds measured on this code (BENCHMARKS.md, "Memory bound").

use crate::config::GatewayConfig;
use crate::http::server::HTTP1_MAX_BUF;

/// Resident memory of a gateway that has served some traffic, broker link and
/// metrics included (33-38 MiB measured; rounded up).
pub const BASELINE_BYTES: u64 = 48 * MIB;
/// One open connection beside its read buffer: socket state, hyper's connection, task.
pub const PER_CONNECTION_BYTES: u64 = 16 * 1024;
/// One request in flight beside its body: parsed head, envelope, spans.
pub const PER_REQUEST_BYTES: u64 = 16 * 1024;

const MIB: u64 = 1024 * 1024;

/// The worst case the settings allow, in bytes.
pub fn worst_case(config: &GatewayConfig) -> u64 {
    config.body_budget_mib * MIB
        + 2 * u64::from(config.max_in_flight) * PER_REQUEST_BYTES
        + u64::from(config.max_connections) * (PER_CONNECTION_BYTES + HTTP1_MAX_BUF as u64)
        + BASELINE_BYTES
}

/// Refuses settings that exceed the budget, or that let unverified requests take more
/// than half of Pluggy's slots; the message names the variables to change.
pub fn check(config: &GatewayConfig) -> Result<(), String> {
    if 2 * config.max_unverified() > config.max_in_flight.max(2) {
        return Err(format!(
            "MAX_UNVERIFIED ({}) must be at most half of MAX_IN_FLIGHT ({}), so verified \
             deliveries always find a slot",
            config.max_unverified(),
            config.max_in_flight
        ));
    }
    let unverified_bytes = u64::from(config.max_unverified()) * config.body_limit_bytes;
    if 2 * unverified_bytes > config.body_budget_mib * MIB {
        return Err(format!(
            "MAX_UNVERIFIED ({}) x BODY_LIMIT_BYTES ({}) takes more than half of BODY_BUDGET_MIB \
             ({}): unverified bodies could crowd out verified ones",
            config.max_unverified(),
            config.body_limit_bytes,
            config.body_budget_mib
        ));
    }
    if config.body_limit_bytes > config.body_budget_mib * MIB {
        return Err(format!(
            "BODY_LIMIT_BYTES ({}) is larger than BODY_BUDGET_MIB ({}): no body that size could be read",
            config.body_limit_bytes, config.body_budget_mib
        ));
    }
    let worst = worst_case(config);
    let budget = config.memory_budget_mib * MIB;
    if worst > budget {
        return Err(format!(
            "worst-case memory {} MiB exceeds MEMORY_BUDGET_MIB ({}): BODY_BUDGET_MIB ({}) + \
             2 x MAX_IN_FLIGHT ({}) x {} KiB + MAX_CONNECTIONS ({}) x {} KiB + {} MiB baseline; \
             lower one of them or raise the budget",
            worst.div_ceil(MIB),
            config.memory_budget_mib,
            config.body_budget_mib,
            config.max_in_flight,
            PER_REQUEST_BYTES / 1024,
            config.max_connections,
            (PER_CONNECTION_BYTES + HTTP1_MAX_BUF as u64) / 1024,
            BASELINE_BYTES / MIB
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> GatewayConfig {
        let mut all = vec!["gateway"];
        all.extend_from_slice(args);
        GatewayConfig::try_parse_from(all).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_defaults_fit_their_budget_and_a_larger_setting_is_refused() {
        let defaults = config(&[]);
        assert!(check(&defaults).is_ok(), "{:?}", check(&defaults));
        assert!(worst_case(&defaults) <= 240 * MIB);
        let refused = check(&config(&["--body-budget-mib", "512"]));
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("MEMORY_BUDGET_MIB (240)")
                    && e.contains("BODY_BUDGET_MIB (512)")),
            "{refused:?}"
        );
        let lopsided = check(&config(&["--max-unverified", "300"]));
        assert!(lopsided.is_err_and(|e| e.contains("MAX_UNVERIFIED (300)")));
        let crowded = check(&config(&["--body-limit-bytes", "4194304"]));
        assert!(crowded.is_err_and(|e| e.contains("more than half of BODY_BUDGET_MIB")));
        // A small in-flight bound brings the unverified default down with it.
        assert_eq!(config(&["--max-in-flight", "2"]).max_unverified(), 1);
        assert!(check(&config(&["--max-in-flight", "2"])).is_ok());
    }
}
