#!/usr/bin/env python3
"""Probe a Tierlink node with an independent gRPC client (Python grpcio, not Tierlink's code).

Connects with a member's certificate from federation.json (written by `tierlink demo --serve`),
lists the services by server reflection, checks the standard health service, calls
tierlink.v1.Exchange/ListCatalogs and tierlink.v1.Directory/Status (decoding the answers from the
reflected descriptors alone), checks that a read of records naming no principal is refused
(default deny), and that a client without a certificate is refused.

    pip install grpcio grpcio-reflection grpcio-health-checking protobuf
    python3 ops/grpc-probe.py DIR/federation.json [ASKER_CODE] [TARGET_CODE]

Exit status 0 when every step succeeded.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def main():
    manifest = json.load(open(sys.argv[1]))
    nodes = {n["code"]: n for n in manifest["nodes"]}
    asker = nodes[sys.argv[2]] if len(sys.argv) > 2 else manifest["nodes"][0]
    target = nodes[sys.argv[3]] if len(sys.argv) > 3 else manifest["nodes"][-1]
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(asker["ca_cert"], "rb").read(),
        private_key=open(asker["tls_key"], "rb").read(),
        certificate_chain=open(asker["tls_cert"], "rb").read(),
    )
    address = target["endpoint"].removeprefix("https://")
    channel = grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", "localhost")])

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    services = [
        s.name
        for r in reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        for s in r.list_services_response.service
    ]
    print(f"{asker['code']} -> {target['code']} at {address}: services {sorted(services)}")
    for service in ["tierlink.v1.Exchange", "tierlink.v1.Directory", "tierlink.v1.Audit", "tierlink.v1.Federation"]:
        assert service in services, services

    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="tierlink.v1.Exchange"))
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
    print(f"health of tierlink.v1.Exchange: {status}")
    assert status == "SERVING"

    # Build the request and response types from the reflected descriptors only.
    pool = descriptor_pool.DescriptorPool()
    files, added = {}, set()

    def fetch(request):
        for r in reflection.ServerReflectionInfo(iter([request])):
            for raw in r.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files[fd.name] = fd

    def add(name):  # each file after the files it imports
        if name in added:
            return
        if name not in files:
            fetch(reflection_pb2.ServerReflectionRequest(file_by_filename=name))
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    def call(service, method, request, response):
        """Calls a unary method with messages built from the reflected descriptors."""
        fetch(reflection_pb2.ServerReflectionRequest(file_containing_symbol=f"tierlink.v1.{service}"))
        for name in list(files):
            add(name)
        message = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tierlink.v1.{name}"))
        stub = channel.unary_unary(
            f"/tierlink.v1.{service}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message(response).FromString,
        )
        return stub(message(request)())

    answer = call("Exchange", "ListCatalogs", "ListCatalogsRequest", "ListCatalogsResponse")
    print(f"ListCatalogs on {answer.node}: {len(answer.catalogs)} catalogs")
    for c in answer.catalogs:
        print(f"  {c.code:<18} {c.sharing_type:<14} {c.record_count:>7} records  {c.name}")
    assert answer.node == target["code"]

    # The federation directory, from the target's replica: every node holds it.
    st = call("Directory", "Status", "StatusRequest", "StatusResponse")
    print(
        f"directory at {st.meta.node}: {st.state}, term {st.term}, leader {st.meta.leader}, "
        f"applied index {st.meta.applied_index}, {len(st.replicas)} replicas"
    )
    assert st.meta.leader and st.meta.applied_index > 0 and st.replicas, st

    # Records are read only for a principal whose node vouches for it: a bare node read is refused.
    catalog = answer.catalogs[0].code
    query_type = message_factory.GetMessageClass(pool.FindMessageTypeByName("tierlink.v1.QueryRequest"))
    scope_type = message_factory.GetMessageClass(pool.FindMessageTypeByName("tierlink.v1.ReadScope"))
    batch_type = message_factory.GetMessageClass(pool.FindMessageTypeByName("tierlink.v1.SignedBatch"))
    query = channel.unary_stream(
        "/tierlink.v1.Exchange/Query",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=batch_type.FromString,
    )
    try:
        list(query(query_type(scope=scope_type(catalog=catalog, target=target["code"])), timeout=10))
    except grpc.RpcError as refused:
        print(f"Query of {catalog} naming no principal: refused ({refused.code().name}: {refused.details()})")
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, refused
    else:
        raise AssertionError("records were served to a read naming no principal")

    # Without a certificate from the federation CA, the handshake is refused.
    anonymous = grpc.secure_channel(
        address,
        grpc.ssl_channel_credentials(root_certificates=open(asker["ca_cert"], "rb").read()),
        options=[("grpc.ssl_target_name_override", "localhost")],
    )
    try:
        health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(), timeout=10)
    except grpc.RpcError as refused:
        print(f"without a client certificate: refused ({refused.code().name})")
    else:
        raise AssertionError("a client without a certificate was served")
    return 0


if __name__ == "__main__":
    sys.exit(main())
