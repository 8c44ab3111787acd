"""Tests 4 and 5: gRPC seen by grpcio, without generated stubs: server reflection (the
`grpcio-reflection` client speaks v1alpha; the same client logic is also run over v1), the
standard health service, and a malformed request body answered INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICES = {"fafnir.security.v1.SecurityService", "fafnir.users.v1.UserService", "grpc.health.v1.Health"}
V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


class V1Stub:
    """`grpc.reflection.v1` has the same messages as v1alpha, byte for byte, under another
    service name: the v1alpha client works over it with this stub."""

    def __init__(self, channel: grpc.Channel):
        self.ServerReflectionInfo = channel.stream_stream(  # noqa: N815 (the generated stub's name)
            V1_METHOD,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )


def reflection_v1(channel) -> ProtoReflectionDescriptorDatabase:
    db = ProtoReflectionDescriptorDatabase(channel)
    db._stub = V1Stub(channel)  # the client keeps its stub here; nothing else changes
    return db


def check_reflection(db: ProtoReflectionDescriptorDatabase) -> None:
    services = set(db.get_services())
    assert SERVICES <= services, services
    pool = DescriptorPool(db)
    method = pool.FindMethodByName("fafnir.security.v1.SecurityService.CheckPermission")
    assert method.input_type.full_name == "fafnir.security.v1.CheckPermissionRequest"
    assert {"user_id", "permission"} <= set(method.input_type.fields_by_name)
    assert method.output_type.full_name == "fafnir.security.v1.CheckPermissionResponse"
    profile = pool.FindServiceByName("fafnir.users.v1.UserService").methods_by_name["GetProfile"]
    assert profile.input_type.fields_by_name["user_id"].type == profile.input_type.fields_by_name["user_id"].TYPE_STRING


def test_reflection_v1alpha_with_grpcio_reflection_client(channel):
    """grpcio-reflection's own client (v1alpha), as grpcurl and most tools still use it."""
    check_reflection(ProtoReflectionDescriptorDatabase(channel))


def test_reflection_v1_with_the_same_client(channel):
    check_reflection(reflection_v1(channel))


@pytest.mark.parametrize("service", ["", *sorted(SERVICES - {"grpc.health.v1.Health"})])
def test_health_check_serving(channel, service):
    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None)
    request = b"" if not service else bytes([0x0A, len(service)]) + service.encode()
    assert check(request, timeout=10) == b"\x08\x01"  # status: SERVING


def test_malformed_protobuf_is_invalid_argument(channel, alice):
    call = channel.unary_unary(
        "/fafnir.security.v1.SecurityService/CheckPermission", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as err:
        call(b"\xff\xff\xff", metadata=[("authorization", f"Bearer {alice.token}")], timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.value.code(), err.value.details())


def test_unknown_method_is_unimplemented(channel, alice):
    call = channel.unary_unary("/fafnir.security.v1.SecurityService/NoSuchMethod")
    with pytest.raises(grpc.RpcError) as err:
        call(b"", metadata=[("authorization", f"Bearer {alice.token}")], timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
