use super::*;

fn code(c: &str) -> NodeCode {
    c.parse().unwrap()
}

fn limits(per_caller: u32, per_node: u32) -> Arc<ReadLimits> {
    ReadLimits::new(
        code("420502001"),
        &LimitSettings {
            reads_per_caller: per_caller,
            reads_per_node: per_node,
            ..LimitSettings::default()
        },
    )
}

#[test]
fn reads_are_capped_per_caller_and_per_node_and_slots_come_back_when_dropped() {
    let limits = limits(2, 3);
    let (district, city) = (code("420502"), code("420500"));
    let first = limits.open(&district).unwrap();
    let _second = limits.open(&district).unwrap();
    let refused = limits.open(&district).err().unwrap();
    assert_eq!(
        refused.to_string(),
        "420502 has 2 reads open on node 420502001, the most one node may have: finish or cancel one, then ask again"
    );
    // Another caller still has room, up to the node's own limit.
    let _third = limits.open(&city).unwrap();
    let full = limits.open(&city).err().unwrap();
    assert!(matches!(full, Exhausted::Node { open: 3, .. }), "{full:?}");
    assert!(full.to_string().contains("try again when one has ended"));

    drop(first);
    limits.open(&district).unwrap();
}

fn framing(path: &str, small: usize) -> Framing {
    let (limit, streamed) = request_rule(path, small);
    Framing {
        method: path.into(),
        limit,
        streamed,
        compressed: false,
        prefix: [0; 5],
        have: 0,
        left: 0,
        messages: 0,
    }
}

fn message(len: usize) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&(len as u32).to_be_bytes());
    m.extend(std::iter::repeat_n(7u8, len));
    m
}

#[test]
fn a_message_is_followed_through_any_split_of_its_bytes() {
    let whole = message(300);
    for cut in [1, 3, 5, 6, 299] {
        let mut f = framing("/tierlink.v1.Exchange/Query", 1024);
        f.feed(&whole[..cut]).unwrap();
        f.feed(&whole[cut..]).unwrap();
        f.finish().unwrap();
    }
}

#[test]
fn a_message_over_its_method_limit_is_refused_from_its_prefix() {
    let mut query = framing("/tierlink.v1.Exchange/Query", 1024);
    // Only the prefix has arrived: refused before the body is buffered.
    let err = query.feed(&message(2000)[..5]).unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(
        err.message()
            .contains("the /tierlink.v1.Exchange/Query request is 2000 bytes, over the 1024 bytes"),
        "{}",
        err.message()
    );
    // The calls that carry data take up to the largest message.
    for large in [
        "/tierlink.v1.Exchange/PutRecords",
        "/tierlink.v1.Directory/Submit",
        "/tierlink.v1.Federation/InstallSnapshot",
    ] {
        let mut f = framing(large, 1024);
        f.feed(&message(2000)).unwrap();
        f.finish().unwrap();
        let mut prefix = vec![0];
        prefix.extend_from_slice(&(MAX_MESSAGE_BYTES as u32 + 1).to_be_bytes());
        let err = framing(large, 1024).feed(&prefix).unwrap_err();
        assert!(err.message().contains("several calls"), "{}", err.message());
    }
}

#[test]
fn what_is_not_grpc_framing_is_an_invalid_argument() {
    let invalid = |f: &mut Framing, bytes: &[u8]| {
        let err = f.feed(bytes).and_then(|()| f.finish()).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        err.message().to_owned()
    };
    let query = || framing("/tierlink.v1.Exchange/Query", 1024);
    assert!(invalid(&mut query(), b"GET / HTTP/1.1\r\n").contains("flag byte 0x47"));
    // The compressed flag without a grpc-encoding.
    assert!(invalid(&mut query(), &[1, 0, 0, 0, 0]).contains("flag byte 0x01"));
    assert!(invalid(&mut query(), &message(10)[..8]).contains("ended inside a message"));
    assert!(invalid(&mut query(), &[0, 0]).contains("ended inside a message"));
    assert!(invalid(&mut query(), &[]).contains("holds no message"));
    let two = [message(3), message(3)].concat();
    assert!(invalid(&mut query(), &two).contains("more than one message"));

    // Reflection is a stream of requests: several messages, or none, are fine.
    let mut reflection = framing(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        1024,
    );
    reflection.feed(&two).unwrap();
    reflection.finish().unwrap();
}
