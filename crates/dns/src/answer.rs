//! Answering one query, as a pure function of the query's bytes, the
//! asking container and the name table: no I/O, so every case is tested
//! without root or sockets. The server calls [`answer`] for each query and
//! sends the reply, or forwards the query to the host's resolvers when it
//! is told to.

use crate::table::{Found, NameTable};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::net::IpAddr;

/// How long clients may keep an answer about a container: short, as a
/// container's names follow it as it starts, stops and moves.
pub const TTL: u32 = 5;

/// The UDP payload size announced to clients that speak EDNS: every answer
/// about containers fits (RFC 9715's advice for a size that is never
/// fragmented).
const EDNS_PAYLOAD: u16 = 1232;

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not about a container: pass the query to the host's resolvers and
    /// relay their answer.
    Forward,
    /// Not a query one can answer (too short to carry an id, or itself a
    /// response): drop it.
    Ignore,
}

/// Answers `query` from the container `asker`: A and AAAA for the names of
/// containers that share a network with it (`NAME` and `NAME.NETWORK`),
/// PTR for their addresses, NXDOMAIN for containers it shares no network
/// with; anything else is forwarded.
pub fn answer(query: &[u8], asker: &str, table: &NameTable) -> Outcome {
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(_) => return format_error(query),
    };
    if request.metadata.message_type != MessageType::Query {
        return Outcome::Ignore;
    }
    if request.metadata.op_code != OpCode::Query {
        return reply(&request, ResponseCode::NotImp, Vec::new());
    }
    let [question] = request.queries.as_slice() else {
        return reply(&request, ResponseCode::FormErr, Vec::new());
    };
    if question.query_class != DNSClass::IN {
        return Outcome::Forward;
    }
    if question.query_type == RecordType::PTR
        && let Some(address) = arpa_address(&question.name)
    {
        return match table.lookup_address(asker, address) {
            Found::Visible(names) => {
                let records = names
                    .into_iter()
                    .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
                    .map(|n| Record::from_rdata(question.name.clone(), TTL, RData::PTR(PTR(n))))
                    .collect();
                reply(&request, ResponseCode::NoError, records)
            }
            Found::Hidden => reply(&request, ResponseCode::NXDomain, Vec::new()),
            Found::Unknown => Outcome::Forward,
        };
    }
    let name = question.name.to_lowercase().to_ascii();
    let name = name.strip_suffix('.').unwrap_or(&name);
    match table.lookup_name(asker, name) {
        Found::Visible(addresses) => {
            let records = addresses
                .into_iter()
                .filter_map(|address| record_of(question, address))
                .collect();
            // A name with no address of the asked type is NODATA: NOERROR
            // and no answer, so the client does not take the name for absent.
            reply(&request, ResponseCode::NoError, records)
        }
        Found::Hidden => reply(&request, ResponseCode::NXDomain, Vec::new()),
        Found::Unknown => Outcome::Forward,
    }
}

/// SERVFAIL for `query`: the host's resolvers gave no answer.
pub fn server_failure(query: &[u8]) -> Option<Vec<u8>> {
    match Message::from_vec(query) {
        Ok(request) => match reply(&request, ResponseCode::ServFail, Vec::new()) {
            Outcome::Reply(bytes) => Some(bytes),
            _ => None,
        },
        Err(_) => None,
    }
}

/// The id of a query or an answer, if it is long enough to have one.
pub fn message_id(message: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*message.first()?, *message.get(1)?]))
}

/// The record answering `question` with `address`, if it is of the type
/// asked for.
fn record_of(question: &Query, address: IpAddr) -> Option<Record> {
    let data = match (question.query_type, address) {
        (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => RData::A(A(v4)),
        (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(question.name.clone(), TTL, data))
}

/// The address a full `in-addr.arpa` or `ip6.arpa` name stands for.
fn arpa_address(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// A query that does not parse: FORMERR if it has a header to answer.
fn format_error(query: &[u8]) -> Outcome {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Outcome::Ignore;
    }
    let Some(id) = message_id(query) else {
        return Outcome::Ignore;
    };
    let response = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
    response.to_vec().map_or(Outcome::Ignore, Outcome::Reply)
}

fn reply(request: &Message, code: ResponseCode, answers: Vec<Record>) -> Outcome {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    // Other queries are forwarded to recursive resolvers: recursion is there.
    response.metadata.recursion_available = true;
    response.metadata.authoritative = code != ResponseCode::NotImp && code != ResponseCode::FormErr;
    response.metadata.response_code = code;
    response.queries = request.queries.clone();
    response.answers = answers;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.edns = Some(edns);
    }
    response.to_vec().map_or(Outcome::Ignore, Outcome::Reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::table;

    fn query(name: &str, record_type: RecordType) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = 4242;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
        message.to_vec().unwrap()
    }

    fn ask(asker: &str, name: &str, record_type: RecordType) -> Result<(ResponseCode, Vec<String>), Outcome> {
        match answer(&query(name, record_type), asker, &table()) {
            Outcome::Reply(bytes) => {
                let response = Message::from_vec(&bytes).unwrap();
                assert_eq!(response.metadata.id, 4242);
                assert_eq!(response.metadata.message_type, MessageType::Response);
                assert_eq!(response.queries.len(), 1);
                let data = response.answers.iter().map(|r| r.data.to_string()).collect();
                Ok((response.metadata.response_code, data))
            }
            other => Err(other),
        }
    }

    fn answered(code: ResponseCode, data: &[&str]) -> Result<(ResponseCode, Vec<String>), Outcome> {
        Ok((code, data.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn a_and_aaaa_of_containers_on_a_shared_network() {
        assert_eq!(
            ask("id-web", "db.", RecordType::A),
            answered(ResponseCode::NoError, &["10.1.0.3"])
        );
        assert_eq!(
            ask("id-db", "WEB.", RecordType::AAAA),
            answered(ResponseCode::NoError, &["fd00:1::2"])
        );
        assert_eq!(
            ask("id-cache", "db.back.", RecordType::A),
            answered(ResponseCode::NoError, &["10.2.0.3"])
        );
        // A name with no address of that family: NODATA, not NXDOMAIN.
        assert_eq!(
            ask("id-web", "db.", RecordType::AAAA),
            answered(ResponseCode::NoError, &[])
        );
        assert_eq!(
            ask("id-web", "db.", RecordType::MX),
            answered(ResponseCode::NoError, &[])
        );
    }

    #[test]
    fn containers_on_no_shared_network_do_not_exist_for_the_asker() {
        assert_eq!(
            ask("id-web", "cache.", RecordType::A),
            answered(ResponseCode::NXDomain, &[])
        );
        assert_eq!(
            ask("id-web", "db.back.", RecordType::A),
            answered(ResponseCode::NXDomain, &[])
        );
        assert_eq!(
            ask("id-web", "lone.", RecordType::AAAA),
            answered(ResponseCode::NXDomain, &[])
        );
        assert_eq!(
            ask("id-web", "4.0.2.10.in-addr.arpa.", RecordType::PTR),
            answered(ResponseCode::NXDomain, &[])
        );
    }

    #[test]
    fn ptr_names_the_container_holding_an_address() {
        assert_eq!(
            ask("id-web", "3.0.1.10.in-addr.arpa.", RecordType::PTR),
            answered(ResponseCode::NoError, &["db."])
        );
        let v6 = Name::from(IpAddr::from("fd00:1::2".parse::<std::net::Ipv6Addr>().unwrap()));
        assert_eq!(
            ask("id-db", &v6.to_ascii(), RecordType::PTR),
            answered(ResponseCode::NoError, &["web."])
        );
    }

    #[test]
    fn everything_else_is_forwarded() {
        assert_eq!(
            ask("id-web", "example.com.", RecordType::A),
            Err(Outcome::Forward)
        );
        assert_eq!(ask("id-web", "db.nowhere.", RecordType::A), Err(Outcome::Forward));
        assert_eq!(
            ask("id-web", "1.100.51.198.in-addr.arpa.", RecordType::PTR),
            Err(Outcome::Forward)
        );
        // A partial reverse name is no address of a container's.
        assert_eq!(
            ask("id-web", "1.10.in-addr.arpa.", RecordType::PTR),
            Err(Outcome::Forward)
        );
    }

    #[test]
    fn malformed_queries_get_formerr_or_nothing() {
        assert_eq!(answer(b"\x01", "id-web", &table()), Outcome::Ignore);
        let mut garbage = query("db.", RecordType::A);
        garbage.truncate(15);
        let Outcome::Reply(bytes) = answer(&garbage, "id-web", &table()) else {
            panic!("no reply")
        };
        let response = Message::from_vec(&bytes).unwrap();
        assert_eq!(
            (response.metadata.id, response.metadata.response_code),
            (4242, ResponseCode::FormErr)
        );
        // A response sent to the resolver is not answered (no loops).
        let mut response = query("db.", RecordType::A);
        response[2] |= 0x80;
        assert_eq!(answer(&response, "id-web", &table()), Outcome::Ignore);
    }

    #[test]
    fn edns_queries_get_an_opt_record_and_servfail_keeps_the_question() {
        let mut message = Message::from_vec(&query("db.", RecordType::A)).unwrap();
        message.edns = Some(Edns::new());
        let Outcome::Reply(bytes) = answer(&message.to_vec().unwrap(), "id-web", &table()) else {
            panic!("no reply")
        };
        assert_eq!(Message::from_vec(&bytes).unwrap().max_payload(), EDNS_PAYLOAD);
        let failed =
            Message::from_vec(&server_failure(&query("example.com.", RecordType::A)).unwrap()).unwrap();
        assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(failed.queries[0].name.to_ascii(), "example.com.");
    }
}
