//! Bounded resources per peer, on real nodes over loopback mutual TLS: reads whose consumer
//! stops, requests over their method's size, bodies that are not gRPC, and connections that
//! never start TLS; the gateway's connections per source, and requests that stall on it. Reads held unread are in `unread_reads.rs`, alone in their process.

mod util;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use tierlink_client::channel;
use tierlink_proto::v1::FieldEquals;
use tierlink_proto::v1::exchange_client::ExchangeClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use util::*;

/// A channel to node `n` with its own certificate whose HTTP/2 windows hold one batch of 100
/// residents at most, so that a read it stops taking stalls at once.
#[allow(clippy::disallowed_methods)] // The client's own channel has windows of megabytes.
async fn narrow_channel(f: &Fixture, n: usize) -> Channel {
    let dir = &f.federation.nodes[n].dir;
    let credentials = dir.credentials().unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&credentials.ca_pem))
        .identity(tonic::transport::Identity::from_pem(
            &credentials.tls_cert_pem,
            &credentials.tls_key_pem,
        ));
    Channel::from_shared(dir.config.server.endpoint.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_consumer_stops_is_ended_after_the_stall_limit() {
    let f = federation_with(2000, |config| config.limits.stall_ms = 500).await;
    let open = open_policies(&f).await;

    // Produced here: the street's own read, one batch taken, then nothing.
    let mut own = ExchangeClient::new(narrow_channel(&f, STREET).await);
    let mut stream = own.query(own_query()).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().is_some());
    let street_audit = f.federation.nodes[STREET].audit().unwrap();
    let entry = audited(street_audit, |e| {
        e.kind == "query" && e.principal.is_empty()
    })
    .await;
    assert_eq!(
        entry.reason,
        "the consumer took no batch for 0.5 s: the read was ended"
    );
    assert!(entry.records < 2000, "{}", entry.records);
    // What the transport still held arrives, then the reason.
    let ended = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), tonic::Code::DeadlineExceeded, "{ended:?}");
    assert!(
        ended
            .message()
            .starts_with("the consumer took no batch for 0.5 s, so node 420502001 ended the read"),
        "{}",
        ended.message()
    );

    // Relayed: the district's principal stops reading; the district ends the read, and with it
    // the stream it opened at the street.
    let mut district = ExchangeClient::new(narrow_channel(&f, DISTRICT).await);
    let mut relayed = district
        .query(principal_query(&open.district))
        .await
        .unwrap()
        .into_inner();
    assert!(relayed.message().await.unwrap().is_some());
    let district_audit = f.federation.nodes[DISTRICT].audit().unwrap();
    let entry = audited(district_audit, |e| e.principal == "staff@420502").await;
    assert_eq!(
        entry.reason,
        "the principal's client took no batch for 0.5 s: the read was ended"
    );
    // The street's side has ended too: sent in full into the relay's window, or cut off when
    // the relay dropped it.
    let upstream = audited(street_audit, |e| e.principal == "staff@420502").await;
    assert!(
        [
            "",
            "the consumer went away before the stream ended",
            "the consumer took no batch for 0.5 s: the read was ended"
        ]
        .contains(&upstream.reason.as_str()),
        "{}",
        upstream.reason
    );
    drop(relayed);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_its_method_size_is_refused_and_data_calls_keep_theirs() {
    let f = federation(0).await;
    let street = f.clients[STREET].code().clone();
    let mut client = f.clients[STREET].connect(&street).await.unwrap();
    let mut huge = own_query();
    huge.r#where = vec![FieldEquals {
        item: "name".into(),
        value: "王".repeat(40_000),
    }];
    let err = client.query(huge).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .starts_with("the /tierlink.v1.Exchange/Query request is 1200")
            && err
                .message()
                .contains("bytes, over the 65536 bytes this node accepts for it"),
        "{}",
        err.message()
    );
    // Records are data: a write of several hundred kilobytes is taken.
    let written = f.clients[STREET]
        .put_records(
            RESIDENTS,
            columns(tierlink_sandbox::sample::RESIDENT_COLUMNS),
            tierlink_sandbox::sample::residents("420502001", 1000, 7),
        )
        .await
        .unwrap();
    assert_eq!(written.created, 1000);
    f.federation.stop().await.unwrap();
}

/// Sends `body` as the whole request of `method` and returns the status answered.
async fn raw_call(channel: &mut Channel, method: &str, body: &'static str) -> tonic::Status {
    use tonic::codegen::Service;
    let request = tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(format!("https://127.0.0.1{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(body.to_owned()))
        .unwrap();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let response = channel.call(request).await.unwrap();
    tonic::Status::from_header_map(response.headers()).expect("a status in the headers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_a_message_is_an_invalid_argument() {
    let f = federation(0).await;
    let dir = &f.federation.nodes[STREET].dir;
    let mut channel = channel(&dir.credentials().unwrap(), &dir.config.server.endpoint)
        .await
        .unwrap();
    for (method, body, says) in [
        // Well framed, but field number 0 is no protobuf.
        (
            "/tierlink.v1.Exchange/Query",
            "\0\0\0\0\x02\0\0",
            "a tierlink.v1.QueryRequest message could not be decoded",
        ),
        (
            "/tierlink.v1.Directory/Members",
            "\0\0\0\0\x01\x07",
            "a tierlink.v1.ReadRequest message could not be decoded",
        ),
        // Not gRPC at all.
        (
            "/tierlink.v1.Exchange/ListCatalogs",
            "GET / HTTP/1.1\r\n\r\n",
            "is not gRPC",
        ),
        // A message cut short.
        (
            "/tierlink.v1.Audit/Entries",
            "\0\0\0\0\x10abc",
            "ended inside a message",
        ),
    ] {
        let status = raw_call(&mut channel, method, body).await;
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{method}: {status:?}"
        );
        assert!(status.message().contains(says), "{method}: {status:?}");
    }
    // Raft takes a message only from a voter (the city), refusing anyone else on the request's
    // head, before the body is read.
    let garbage = "\0\0\0\0\x01\x07";
    let refused = raw_call(&mut channel, "/tierlink.v1.Federation/Vote", garbage).await;
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    // The district is a replica of raft (a street follows it instead): the city's message to it
    // is read, and this one cannot be decoded.
    let city = f.federation.nodes[CITY].dir.credentials().unwrap();
    let district = &f.federation.nodes[DISTRICT].dir;
    let mut from_city = tierlink_client::channel(&city, &district.config.server.endpoint)
        .await
        .unwrap();
    let status = raw_call(&mut from_city, "/tierlink.v1.Federation/Vote", garbage).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("a tierlink.v1.RaftPayload message could not be decoded"),
        "{status:?}"
    );
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_starts_tls_is_dropped_at_the_handshake_deadline() {
    let f = federation_with(0, |config| config.limits.handshake_ms = 300).await;
    let addr = f.federation.nodes[STREET].dir.config.server.listen;
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut byte = [0u8; 1];
    // The node closes it; the wait is only a guard against a node that never does.
    let closed = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut byte))
        .await
        .expect("the node closed the connection");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    // A member connecting properly is served as ever.
    let street = f.clients[STREET].code().clone();
    f.clients[DISTRICT]
        .connect(&street)
        .await
        .unwrap()
        .list_catalogs(tierlink_proto::v1::ListCatalogsRequest::default())
        .await
        .unwrap();
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_read_counts_against_the_member_it_is_for_not_the_relay() {
    let f = federation_with(2000, |config| config.limits.reads_per_caller = 2).await;
    let open = open_policies(&f).await;
    // The city's principal holds two reads of the street's residents, relayed by the district.
    let via_district = || {
        let mut query = principal_query(&open.city);
        query.scope.as_mut().unwrap().via = "420502".into();
        query
    };
    // A connection each: one held read fills a narrow connection's window.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut city = ExchangeClient::new(narrow_channel(&f, CITY).await);
        let mut stream = city.query(via_district()).await.unwrap().into_inner();
        assert!(stream.message().await.unwrap().is_some());
        held.push(stream);
    }
    // They are the city's reads, at the district and at the street: the district's own
    // principal is still served by the street.
    let mut district = ExchangeClient::new(narrow_channel(&f, DISTRICT).await);
    let mut own = district
        .query(principal_query(&open.district))
        .await
        .unwrap()
        .into_inner();
    assert!(own.message().await.unwrap().is_some());
    // A third read for the city is refused, however it is routed.
    for query in [via_district(), principal_query(&open.city)] {
        let mut city = ExchangeClient::new(narrow_channel(&f, CITY).await);
        let refused = city.query(query).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        assert!(
            refused.message().starts_with("420500 has 2 reads open"),
            "{}",
            refused.message()
        );
    }
    drop((held, own));
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_repeating_a_long_value_reaches_its_caller_bounded_directly_and_through_relays() {
    let f = federation_with(10, |_| {}).await;
    let open = open_policies(&f).await;
    let mut city = f.clients[CITY]
        .connect(f.clients[CITY].code())
        .await
        .unwrap();
    // A credential's fields are no longer than such things are: refused before anything repeats
    // them, naming the limit.
    for (field, limit, n) in [
        ("purpose", 256, 6_000),
        ("role", 128, 20_000),
        ("principal", 64, 20_000),
    ] {
        let mut query = principal_query(&open.city);
        let credential = query.scope.as_mut().unwrap().credential.as_mut().unwrap();
        let value = "核".repeat(n);
        match field {
            "purpose" => credential.purpose = value,
            "role" => credential.role = value,
            _ => credential.principal = value,
        }
        let refused = city.query(query).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        let said = format!("{field} is at most {limit} characters");
        assert!(refused.message().contains(&said), "{}", refused.message());
    }
    // So is a catalog's code and a request id.
    let mut query = principal_query(&open.city);
    query.scope.as_mut().unwrap().catalog = "9".repeat(20_000);
    let refused = city.query(query).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().len() < 300, "{}", refused.message());
    let mut query = principal_query(&open.city);
    query.scope.as_mut().unwrap().request_id = "r".repeat(129);
    let refused = city.query(query).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    // An item no catalog has, 20,000 characters long: the producer's refusal repeats it, cut to
    // what every peer takes, read here, at the street, and through the district.
    for via in ["", "420502"] {
        let mut query = principal_query(&open.city);
        query.scope.as_mut().unwrap().via = via.into();
        query.r#where = vec![FieldEquals {
            item: "核".repeat(20_000),
            value: "1".into(),
        }];
        let refused = city.query(query).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        let message = refused.message();
        assert!(message.contains("核核核"), "{message}");
        assert!(message.ends_with(" more characters)"), "{message}");
        assert!(message.len() < 8 << 10, "{} bytes", message.len());
    }
    f.federation.stop().await.unwrap();
}

/// A TLS connection to node `n`'s gateway, trusting the federation CA, over a fresh socket.
async fn gateway_tls(f: &Fixture, n: usize) -> tokio_rustls::client::TlsStream<TcpStream> {
    let node = &f.federation.nodes[n];
    let ca = std::fs::read(node.dir.path(&node.dir.config.files.ca)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(node.gateway_addr().unwrap())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Waits up to `within` for the server to close `stream`: true when it did (end of stream or
/// reset), false when it still held it open.
async fn closed(stream: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An answer (e.g. 408) before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_closes_connections_past_its_limits_and_requests_that_stall() {
    let f = federation_with(0, |config| {
        config.limits.handshake_ms = 500;
        let gateway = config.gateway.as_mut().unwrap();
        gateway.connections_per_source = 2;
        gateway.body_idle_ms = 1_500;
    })
    .await;
    let addr = f.federation.nodes[STREET].gateway_addr().unwrap();
    let gateway = util::http::Gateway::of(&f, STREET);

    // Two connections from 127.0.0.1 are its share: a third is closed as it arrives, before
    // TLS; once one closes, the next is served.
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed(&mut third, Duration::from_millis(400)).await,
        "a third connection from one source was kept"
    );
    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(r) = gateway.get("/openapi.json").send().await {
                break r.status();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(served, reqwest::StatusCode::OK);
    drop(gateway);
    drop(_second);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // After TLS: no request at all, and headers that never end, are closed at the deadline.
    let mut silent = gateway_tls(&f, STREET).await;
    assert!(closed(&mut silent, Duration::from_secs(5)).await);
    let mut unended = gateway_tls(&f, STREET).await;
    unended
        .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(closed(&mut unended, Duration::from_secs(5)).await);

    // A body that pauses longer than body_idle_ms is answered 408, with its problem document.
    let admin = util::http::issue(
        &f,
        STREET,
        tierlink_core::identity::tokens::Issue::administrator(util::http::until()),
    );
    let mut stalled = gateway_tls(&f, STREET).await;
    let head = format!(
        "POST /v1/catalogs/101001001/000001/records HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"id_number\": "
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The connection ends with the 408, not after waiting for the stalled body once more.
    let read = tokio::time::timeout(
        Duration::from_millis(2_800),
        stalled.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the stalled body was kept open: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("/problems/body-stalled"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_checks_as_many_writes_at_once_as_it_takes_and_asks_the_rest_to_retry() {
    let f = federation_with(0, |config| {
        config.gateway.as_mut().unwrap().writes = 1;
    })
    .await;
    let admin = util::http::issue(
        &f,
        STREET,
        tierlink_core::identity::tokens::Issue::administrator(util::http::until()),
    );
    let path = "/v1/catalogs/103001001/000001/imports";
    let file = "building_code,community_code,building_name,address,floors,households\n\
                420502001001-B9001,420502001001,9001号楼,夷陵大道9001号,6,24\n";
    // One upload arriving slowly holds the only place while its body comes in.
    let mut slow = gateway_tls(&f, STREET).await;
    let (head, tail) = file.as_bytes().split_at(40);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {admin}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        file.len()
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    slow.write_all(head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let gateway = util::http::Gateway::of(&f, STREET);
    let post = || {
        gateway
            .post(path)
            .bearer_auth(&admin)
            .header("Content-Type", "text/csv")
            .body(file)
            .send()
    };
    let refused = post().await.unwrap();
    assert_eq!(refused.headers()["retry-after"], "5");
    let (status, body) = util::http::problem(refused).await;
    assert_eq!(status, reqwest::StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["type"], "/problems/too-many-writes", "{body}");
    // Records posted wait their turn too.
    let posted = gateway
        .post("/v1/catalogs/103001001/000001/records")
        .bearer_auth(&admin)
        .json(&serde_json::json!([{"building_code": "420502001001-B9002"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);

    // The slow one finishes and is imported; its place is free again.
    slow.write_all(tail).await.unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(post().await.unwrap().status(), reqwest::StatusCode::OK);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_reaches_a_client_still_sending_and_a_trickled_request_meets_its_deadline()
{
    let f = federation_with(0, |config| {
        let gateway = config.gateway.as_mut().unwrap();
        gateway.body_bytes = 16 << 10;
        gateway.request_ms = 2_000;
    })
    .await;
    let path = "/v1/catalogs/103001001/000001/records";
    let body = vec![b' '; 2 << 20];

    // HTTP/1.1: refused for its missing token before its 2 MiB body is read, the client still
    // sends all of it, then reads the answer.
    let mut early = gateway_tls(&f, STREET).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    early.write_all(head.as_bytes()).await.unwrap();
    early.write_all(&body).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), early.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // HTTP/2 (reqwest negotiates it): the same, and a body over body_bytes gets its 413.
    let gateway = util::http::Gateway::of(&f, STREET);
    let (status, problem) = util::http::problem(
        gateway
            .post(path)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{problem}");
    let admin = util::http::issue(
        &f,
        STREET,
        tierlink_core::identity::tokens::Issue::administrator(util::http::until()),
    );
    let (status, problem) = util::http::problem(
        gateway
            .post(path)
            .bearer_auth(&admin)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE, "{problem}");

    // A body trickled a byte at a time, never pausing long, still meets the request deadline.
    let trickled = gateway_tls(&f, STREET).await;
    let (mut reader, mut writer) = tokio::io::split(trickled);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n["
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    // Answered at the deadline, and the connection ends then: the rest is not read.
    let read = tokio::time::timeout(
        Duration::from_millis(3_500),
        reader.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the trickled request was kept: {answer}");
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("/problems/request-timeout"),
        "{answer}"
    );
    // The rest of the request cannot be told from a next one: the answer ends the connection.
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    trickle.abort();
    f.federation.stop().await.unwrap();
}
