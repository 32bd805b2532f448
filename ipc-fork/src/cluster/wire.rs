//! The `NODE_CLUSTER` messages, byte for byte as Node v20 writes and reads
//! them (`lib/internal/cluster/{primary,child,utils}.js`).

use std::fmt;

use ipc_core::json::{self, JsonError, RawJson};
use ipc_core::Message;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// The `cmd` of every cluster message.
pub(crate) const CMD: &str = "NODE_CLUSTER";

/// A scalar member as JavaScript would print it in a template string: the
/// parts of a cluster key (`${address}:${port}:${addressType}:${fd}:${index}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Scalar {
    /// Absent (`undefined` in the key).
    #[default]
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Scalar {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_num(&self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// The value as a `listen` backlog, as Node's primary reads one: a
    /// positive number (its whole part); anything else (`false`, `0`,
    /// `null`, absent) means the default.
    pub(crate) fn as_backlog(&self) -> Option<u32> {
        self.as_num()
            .filter(|&n| n >= 1.0)
            .map(|n| n.min(f64::from(u32::MAX)) as u32)
    }

    /// The value as a port number, if it is one (0..=65535, whole).
    pub(crate) fn as_port(&self) -> Option<u16> {
        self.as_num()
            .filter(|n| n.fract() == 0.0 && (0.0..=65535.0).contains(n))
            .map(|n| n as u16)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Undefined => f.write_str("undefined"),
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            // JavaScript prints whole numbers without a fraction.
            Scalar::Num(n) if n.fract() == 0.0 && n.abs() < 1e21 => write!(f, "{}", *n as i64),
            Scalar::Num(n) => write!(f, "{n}"),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null, a boolean, a number or a string")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `sockname` of a round-robin reply, as the worker reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SocknameIn {
    pub port: Option<u16>,
}

/// Any cluster message, either way: the members both sides look at.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ClusterIn {
    pub act: Option<String>,
    pub seq: Option<u64>,
    pub ack: Option<u64>,
    pub key: Option<String>,
    pub accepted: Option<bool>,
    pub errno: Scalar,
    pub address: Scalar,
    pub port: Scalar,
    #[serde(rename = "addressType")]
    pub address_type: Scalar,
    pub fd: Scalar,
    pub index: Scalar,
    /// A number, or `false` (Node's `listen(port, host, callback)`).
    pub backlog: Scalar,
    pub flags: Option<u32>,
    pub sockname: Option<SocknameIn>,
    /// The raw `data` member (filled by [`read`], not by serde).
    #[serde(skip)]
    pub data: Option<String>,
}

impl ClusterIn {
    /// The key Node builds for a `queryServer`:
    /// `address:port:addressType:fd:index`.
    pub(crate) fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.address, self.port, self.address_type, self.fd, self.index
        )
    }
}

/// Reads a `NODE_CLUSTER` message (`None` for another `cmd`).
pub(crate) fn read(msg: &mut Message<'_>) -> Option<Result<ClusterIn, JsonError>> {
    if msg.cmd() != Some(CMD) {
        return None;
    }
    let data = match json::member(msg.as_str(), "data") {
        Ok(d) => d
            .filter(|d| d.as_str() != "null")
            .map(|d| d.as_str().to_owned()),
        Err(e) => return Some(Err(e)),
    };
    Some(msg.parse::<ClusterIn>().map(|mut m| {
        m.data = data;
        m
    }))
}

/// `{"cmd":"NODE_CLUSTER","act":A[,"key":K],"seq":S}`: `online`,
/// `newconn`, `disconnect`, `close`, `exitedAfterDisconnect`.
#[derive(Debug, Serialize)]
pub(crate) struct Act<'a> {
    pub cmd: &'static str,
    pub act: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    pub seq: u64,
}

impl<'a> Act<'a> {
    pub(crate) fn new(act: &'a str, key: Option<&'a str>, seq: u64) -> Act<'a> {
        Act {
            cmd: CMD,
            act,
            key,
            seq,
        }
    }
}

/// `{"cmd":"NODE_CLUSTER","ack":A[,"accepted":B],"seq":S}`: the primary's
/// ack of `exitedAfterDisconnect`, a worker's answer to `newconn`.
#[derive(Debug, Serialize)]
pub(crate) struct Ack {
    pub cmd: &'static str,
    pub ack: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    pub seq: u64,
}

impl Ack {
    pub(crate) fn new(ack: u64, accepted: Option<bool>, seq: u64) -> Ack {
        Ack {
            cmd: CMD,
            ack,
            accepted,
            seq,
        }
    }
}

/// The primary's `sockname` for a round-robin TCP reply.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sockname {
    pub address: String,
    pub family: &'static str,
    pub port: u16,
}

/// The reply to a `queryServer`, members in Node's order:
/// `{cmd, errno, key, ack, data[, sockname], seq}`. `errno` is `0`
/// (shared), `null` (round-robin) or a negative errno number.
#[derive(Debug, Serialize)]
pub(crate) struct Reply<'a> {
    pub cmd: &'static str,
    pub errno: Option<i32>,
    pub key: &'a str,
    pub ack: u64,
    pub data: Option<RawJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockname: Option<&'a Sockname>,
    pub seq: u64,
}

impl<'a> Reply<'a> {
    /// The answer to query `ack` for `key`, echoing its `data` (JSON
    /// text); no errno, no sockname.
    pub fn new(key: &'a str, ack: u64, data: Option<&'a str>, seq: u64) -> Reply<'a> {
        Reply {
            cmd: CMD,
            errno: None,
            key,
            ack,
            data: data.map(RawJson::new).and_then(Result::ok),
            sockname: None,
            seq,
        }
    }
}

/// A worker's `queryServer` / `listening`:
/// `{cmd, act, index, data, address, port, addressType[, fd, flags][, backlog], seq}`.
#[derive(Debug, Serialize)]
pub(crate) struct Query<'a> {
    pub cmd: &'static str,
    pub act: &'static str,
    pub index: u32,
    pub data: Option<RawJson<'a>>,
    pub address: Option<&'a str>,
    pub port: u16,
    #[serde(rename = "addressType")]
    pub address_type: AddressType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    pub seq: u64,
}

/// `addressType` of a query: `4`/`6` for TCP, `"udp4"`/`"udp6"` for UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressType {
    Tcp4,
    Tcp6,
    Udp4,
    Udp6,
}

impl Serialize for AddressType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AddressType::Tcp4 => s.serialize_u8(4),
            AddressType::Tcp6 => s.serialize_u8(6),
            AddressType::Udp4 => s.serialize_str("udp4"),
            AddressType::Udp6 => s.serialize_str("udp6"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<T: Serialize>(v: &T) -> String {
        let mut buf = [0u8; 512];
        let n = json::to_slice(v, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn writes_what_node_writes() {
        let sock = Sockname {
            address: "::".into(),
            family: "IPv6",
            port: 8000,
        };
        let reply = Reply {
            cmd: CMD,
            errno: None,
            key: "null:8000:4:undefined:0",
            ack: 1,
            data: None,
            sockname: Some(&sock),
            seq: 0,
        };
        assert_eq!(
            text(&reply),
            r#"{"cmd":"NODE_CLUSTER","errno":null,"key":"null:8000:4:undefined:0","ack":1,"data":null,"sockname":{"address":"::","family":"IPv6","port":8000},"seq":0}"#
        );
        assert_eq!(
            text(&Act::new("newconn", Some("k"), 2)),
            r#"{"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":2}"#
        );
        assert_eq!(
            text(&Ack::new(4, None, 1)),
            r#"{"cmd":"NODE_CLUSTER","ack":4,"seq":1}"#
        );
        let q = Query {
            cmd: CMD,
            act: "queryServer",
            index: 0,
            data: None,
            address: None,
            port: 8000,
            address_type: AddressType::Tcp4,
            fd: None,
            flags: None,
            backlog: Some(0),
            seq: 1,
        };
        assert_eq!(
            text(&q),
            r#"{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":8000,"addressType":4,"backlog":0,"seq":1}"#
        );
    }

    #[test]
    fn builds_node_keys() {
        let mut line = br#"{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":8000,"addressType":4,"backlog":0,"seq":1}"#.to_vec();
        let m: ClusterIn = json::from_slice_mut(&mut line).unwrap();
        assert_eq!(m.key(), "null:8000:4:undefined:0");
        assert_eq!((m.act.as_deref(), m.seq), (Some("queryServer"), Some(1)));
        let mut line = br#"{"act":"queryServer","index":0,"data":null,"address":"0.0.0.0","port":8001,"addressType":"udp4","fd":-1,"flags":0,"seq":1}"#.to_vec();
        let m: ClusterIn = json::from_slice_mut(&mut line).unwrap();
        assert_eq!(m.key(), "0.0.0.0:8001:udp4:-1:0");
    }
}
