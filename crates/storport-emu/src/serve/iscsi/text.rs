//! Text keys (`key=value\0`) and the negotiation of the operational keys
//! this target takes part in (RFC 7143 §6.2 and §13).
//!
//! Every key the initiator sends gets an answer, except declarations
//! (`InitiatorName`, `InitiatorAlias`, `SessionType`, `TargetName`,
//! `MaxRecvDataSegmentLength`), which are recorded. Unknown keys are
//! answered `NotUnderstood`; a value outside a key's range is answered
//! `Reject`.

/// Largest text (login or text request) the target collects across
/// continued PDUs.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// `MaxRecvDataSegmentLength` this target declares.
pub const TARGET_MAX_RECV_DATA_SEGMENT: u32 = 256 * 1024;
/// Largest `MaxBurstLength` / `FirstBurstLength` the target accepts.
pub const TARGET_MAX_BURST: u32 = 1024 * 1024;

/// Parses `key=value\0` pairs; malformed entries are returned with `None`.
#[must_use]
pub fn parse(data: &[u8]) -> Vec<(String, Option<String>)> {
    data.split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let text = String::from_utf8_lossy(entry);
            match text.split_once('=') {
                Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                None => (text.into_owned(), None),
            }
        })
        .collect()
}

/// Appends `key=value\0`.
pub fn push(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

/// The session parameters in force after negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// `InitiatorName`.
    pub initiator_name: Option<String>,
    /// `TargetName` the initiator asked for.
    pub target_name: Option<String>,
    /// `SessionType` is `Discovery`.
    pub discovery: bool,
    /// The initiator's `MaxRecvDataSegmentLength`: the most data per PDU this target sends.
    pub initiator_max_recv: u32,
    /// `MaxBurstLength`.
    pub max_burst: u32,
    /// `FirstBurstLength`.
    pub first_burst: u32,
    /// `ImmediateData`.
    pub immediate_data: bool,
    /// `InitialR2T`.
    pub initial_r2t: bool,
}

impl Default for Params {
    fn default() -> Self {
        // RFC 7143 §13 defaults.
        Self {
            initiator_name: None,
            target_name: None,
            discovery: false,
            initiator_max_recv: 8192,
            max_burst: 262_144,
            first_burst: 65_536,
            immediate_data: true,
            initial_r2t: true,
        }
    }
}

fn number(value: &str) -> Option<u32> {
    let value = value.trim();
    value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .map_or_else(
            || value.parse().ok(),
            |hex| u32::from_str_radix(hex, 16).ok(),
        )
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

const fn yes_no(value: bool) -> &'static str {
    if value { "Yes" } else { "No" }
}

/// Where a key may be negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Security negotiation (`CSG` 0).
    Security,
    /// Login operational negotiation (`CSG` 1).
    Operational,
    /// A Text request in full feature phase.
    FullFeature,
}

/// What negotiating one batch of keys produced.
#[derive(Debug, Default)]
pub struct Negotiated {
    /// The answer text.
    pub answer: Vec<u8>,
    /// `AuthMethod` offered without `None`: the login must fail.
    pub auth_refused: bool,
    /// A key was malformed (no `=`): the login must fail.
    pub malformed: bool,
}

/// Negotiates `keys` into `params`, producing the answer.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per key of RFC 7143 §13, easier to check against the RFC side by side"
)]
pub fn negotiate(
    keys: &[(String, Option<String>)],
    params: &mut Params,
    stage: Stage,
) -> Negotiated {
    let mut out = Negotiated::default();
    for (key, value) in keys {
        let Some(value) = value else {
            out.malformed = true;
            continue;
        };
        let answer: Option<String> = match key.as_str() {
            "InitiatorName" => {
                params.initiator_name = Some(value.clone());
                None
            }
            "TargetName" => {
                params.target_name = Some(value.clone());
                None
            }
            "SessionType" => {
                params.discovery = value == "Discovery";
                if value != "Discovery" && value != "Normal" {
                    Some("Reject".to_owned())
                } else {
                    None
                }
            }
            "InitiatorAlias" => None,
            "AuthMethod" => {
                if value.split(',').any(|v| v == "None") {
                    Some("None".to_owned())
                } else {
                    out.auth_refused = true;
                    Some("Reject".to_owned())
                }
            }
            "HeaderDigest" | "DataDigest" => Some(
                if value.split(',').any(|v| v == "None") {
                    "None"
                } else {
                    "Reject"
                }
                .to_owned(),
            ),
            "MaxRecvDataSegmentLength" => {
                match number(value) {
                    Some(n) if (512..=16_777_215).contains(&n) => params.initiator_max_recv = n,
                    _ => out.malformed = true,
                }
                None
            }
            "MaxBurstLength" => Some(
                number(value)
                    .filter(|n| (512..=16_777_215).contains(n))
                    .map_or_else(
                        || "Reject".to_owned(),
                        |n| {
                            params.max_burst = n.min(TARGET_MAX_BURST);
                            params.first_burst = params.first_burst.min(params.max_burst);
                            params.max_burst.to_string()
                        },
                    ),
            ),
            "FirstBurstLength" => Some(
                number(value)
                    .filter(|n| (512..=16_777_215).contains(n))
                    .map_or_else(
                        || "Reject".to_owned(),
                        |n| {
                            params.first_burst = n.min(TARGET_MAX_BURST).min(params.max_burst);
                            params.first_burst.to_string()
                        },
                    ),
            ),
            "ImmediateData" => Some(boolean(value).map_or_else(
                || "Reject".to_owned(),
                |b| {
                    params.immediate_data = b;
                    yes_no(b).to_owned()
                },
            )),
            // This target always solicits: the result (OR) is Yes.
            "InitialR2T" => Some(boolean(value).map_or_else(
                || "Reject".to_owned(),
                |_| {
                    params.initial_r2t = true;
                    "Yes".to_owned()
                },
            )),
            "MaxConnections" | "MaxOutstandingR2T" => Some(
                number(value)
                    .filter(|&n| n >= 1)
                    .map_or_else(|| "Reject".to_owned(), |_| "1".to_owned()),
            ),
            "ErrorRecoveryLevel" => {
                Some(number(value).map_or_else(|| "Reject".to_owned(), |_| "0".to_owned()))
            }
            "DataPDUInOrder" | "DataSequenceInOrder" => {
                Some(boolean(value).map_or_else(|| "Reject".to_owned(), |_| "Yes".to_owned()))
            }
            "DefaultTime2Wait" => Some(
                number(value)
                    .filter(|&n| n <= 3600)
                    .map_or_else(|| "Reject".to_owned(), |n| n.max(2).to_string()),
            ),
            "DefaultTime2Retain" => Some(
                number(value)
                    .filter(|&n| n <= 3600)
                    .map_or_else(|| "Reject".to_owned(), |_| "0".to_owned()),
            ),
            "IFMarker" | "OFMarker" => {
                Some(boolean(value).map_or_else(|| "Reject".to_owned(), |_| "No".to_owned()))
            }
            "IFMarkInt" | "OFMarkInt" => Some("Irrelevant".to_owned()),
            "iSCSIProtocolLevel" => {
                Some(number(value).map_or_else(|| "Reject".to_owned(), |n| n.min(1).to_string()))
            }
            "SendTargets" if stage == Stage::FullFeature => None,
            _ => Some("NotUnderstood".to_owned()),
        };
        if let Some(answer) = answer {
            push(&mut out.answer, key, &answer);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Params, Stage, negotiate, parse};

    fn answer(text: &[u8]) -> (Vec<(String, Option<String>)>, Params) {
        let mut params = Params::default();
        let negotiated = negotiate(&parse(text), &mut params, Stage::Operational);
        (parse(&negotiated.answer), params)
    }

    #[test]
    fn numeric_keys_take_the_rfc_result_functions() {
        let (answered, params) = answer(
            b"MaxBurstLength=99999999\0FirstBurstLength=4096\0DefaultTime2Wait=7\0DefaultTime2Retain=9\0",
        );
        assert_eq!(
            answered,
            [
                ("MaxBurstLength".to_owned(), Some("Reject".to_owned())),
                ("FirstBurstLength".to_owned(), Some("4096".to_owned())),
                ("DefaultTime2Wait".to_owned(), Some("7".to_owned())),
                ("DefaultTime2Retain".to_owned(), Some("0".to_owned())),
            ]
        );
        assert_eq!((params.max_burst, params.first_burst), (262_144, 4096));
        let (answered, params) = answer(b"MaxBurstLength=0x2000\0FirstBurstLength=65536\0");
        assert_eq!(answered[0].1.as_deref(), Some("8192"));
        assert_eq!(
            answered[1].1.as_deref(),
            Some("8192"),
            "FirstBurstLength <= MaxBurstLength"
        );
        assert_eq!(params.first_burst, 8192);
    }

    #[test]
    fn declarations_are_recorded_and_unknown_keys_not_understood() {
        let (answered, params) = answer(
            b"InitiatorName=iqn.x\0MaxRecvDataSegmentLength=4096\0SessionType=Discovery\0Foo=1\0ImmediateData=maybe\0",
        );
        assert_eq!(
            answered,
            [
                ("Foo".to_owned(), Some("NotUnderstood".to_owned())),
                ("ImmediateData".to_owned(), Some("Reject".to_owned())),
            ]
        );
        assert_eq!(params.initiator_name.as_deref(), Some("iqn.x"));
        assert_eq!(params.initiator_max_recv, 4096);
        assert!(params.discovery);
    }

    #[test]
    fn malformed_text_is_flagged_not_trusted() {
        let mut params = Params::default();
        let negotiated = negotiate(&parse(b"NoEquals\0\0\0"), &mut params, Stage::Security);
        assert!(negotiated.malformed);
        let negotiated = negotiate(
            &parse(b"AuthMethod=CHAP,SRP\0"),
            &mut params,
            Stage::Security,
        );
        assert!(negotiated.auth_refused);
        let negotiated = negotiate(
            &parse(b"MaxRecvDataSegmentLength=1\0"),
            &mut params,
            Stage::Operational,
        );
        assert!(negotiated.malformed, "below 512 is out of range");
    }
}
