//! Bounded resources per peer, on real nodes over loopback mutual TLS: reads whose consumer
//! stops, requests over their method's size, bodies that are not gRPC, and connections that
//! never start TLS. Reads held unread are in `unread_reads.rs`, alone in their process.

mod util;

use std::time::Duration;

use tierlink_client::channel;
use tierlink_proto::v1::FieldEquals;
use tierlink_proto::v1::exchange_client::ExchangeClient;
use tokio::io::AsyncReadExt;
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
    let city = f.federation.nodes[CITY].dir.credentials().unwrap();
    let mut from_city = tierlink_client::channel(&city, &dir.config.server.endpoint)
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
