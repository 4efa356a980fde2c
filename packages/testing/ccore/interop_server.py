"""gRPC's interop TestService on a C-core server (Python grpcio), without codegen.

Started as `/usr/bin/python3 interop_server.py HOST DESCRIPTORS`, where
DESCRIPTORS is the comma-separated base64 of the serialized
FileDescriptorProtos of interop/test.proto (proto-loader makes them); the
message classes are built from them. Prints `PORT <n>` once it listens and
serves until stdin closes. `UnimplementedCall` and `UnimplementedService`
are left out, so calling them is UNIMPLEMENTED.

What it does follows the interop spec's server: payloads of the sizes asked
for (zero bytes), `response_status` ends the call with that status,
`x-grpc-test-echo-initial` is echoed as response headers and
`x-grpc-test-echo-trailing-bin` as trailers.
"""
import base64
import sys
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from serving import serve

INITIAL = "x-grpc-test-echo-initial"
TRAILING = "x-grpc-test-echo-trailing-bin"
CODES = {code.value[0]: code for code in grpc.StatusCode}


def message_classes(encoded):
    pool = descriptor_pool.DescriptorPool()
    for part in encoded.split(","):
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(part)))
    get = getattr(message_factory, "GetMessageClass", None)
    factory = message_factory.MessageFactory(pool)

    def cls(name):
        descriptor = pool.FindMessageTypeByName("grpc.testing." + name)
        return get(descriptor) if get is not None else factory.GetPrototype(descriptor)

    return cls


def echo_metadata(context):
    metadata = dict(context.invocation_metadata())
    if INITIAL in metadata:
        context.send_initial_metadata(((INITIAL, metadata[INITIAL]),))
    if TRAILING in metadata:
        context.set_trailing_metadata(((TRAILING, metadata[TRAILING]),))


def end_with(context, status):
    """Ends the call with `status` when it asks for one; True when it did."""
    if status.code == 0:
        return False
    context.set_code(CODES[status.code])
    context.set_details(status.message)
    return True


def handlers(cls):
    Empty = cls("Empty")
    Payload = cls("Payload")
    SimpleRequest, SimpleResponse = cls("SimpleRequest"), cls("SimpleResponse")
    InputRequest, InputResponse = cls("StreamingInputCallRequest"), cls("StreamingInputCallResponse")
    OutputRequest, OutputResponse = cls("StreamingOutputCallRequest"), cls("StreamingOutputCallResponse")

    def empty_call(request, context):
        return Empty()

    def unary_call(request, context):
        echo_metadata(context)
        if end_with(context, request.response_status):
            return SimpleResponse()
        return SimpleResponse(payload=Payload(body=bytes(request.response_size)))

    def responses(request):
        for parameters in request.response_parameters:
            if parameters.interval_us > 0:
                time.sleep(parameters.interval_us / 1e6)
            yield OutputResponse(payload=Payload(body=bytes(parameters.size)))

    def streaming_output_call(request, context):
        echo_metadata(context)
        yield from responses(request)
        end_with(context, request.response_status)

    def streaming_input_call(requests, context):
        return InputResponse(aggregated_payload_size=sum(len(r.payload.body) for r in requests))

    def full_duplex_call(requests, context):
        echo_metadata(context)
        for request in requests:
            if end_with(context, request.response_status):
                return
            yield from responses(request)

    def unary(fn, req, res):
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=req.FromString, response_serializer=res.SerializeToString
        )

    return {
        "EmptyCall": unary(empty_call, Empty, Empty),
        "UnaryCall": unary(unary_call, SimpleRequest, SimpleResponse),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
            streaming_output_call,
            request_deserializer=OutputRequest.FromString,
            response_serializer=OutputResponse.SerializeToString,
        ),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
            streaming_input_call,
            request_deserializer=InputRequest.FromString,
            response_serializer=InputResponse.SerializeToString,
        ),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
            full_duplex_call,
            request_deserializer=OutputRequest.FromString,
            response_serializer=OutputResponse.SerializeToString,
        ),
    }


def main():
    host, encoded = sys.argv[1], sys.argv[2]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    serve(server, "grpc.testing.TestService", handlers(message_classes(encoded)), host)


if __name__ == "__main__":
    main()
