"""A gRPC C-core server (Python grpcio) for the native transport's tests.

Started as `/usr/bin/python3 echo_server.py HOST`; prints `PORT <n>` once
it listens, and serves `/ccore.Test/*` with raw bytes (no protobuf):

- Echo: the request back, with every `x-` request header as a response header;
- Stream: the request back 5 times (server streaming);
- Mixed: 12 messages `<i>:` (server streaming), every fourth followed by
  1 MiB of `m`, every third sent without compression (C-core sends a
  message uncompressed anyway when gzip would not shrink it);
- Fail: INVALID_ARGUMENT, details `bad ✓ input`, a `x-t-bin` trailer and
  `grpc-status-details-bin`;
- Sleep: waits 3 s (or until cancelled), then answers.

Responses are gzip-compressed for clients that accept gzip. Pings without
data more often than every 60 s count as strikes: after one, the server
sends GOAWAY ENHANCE_YOUR_CALM `too_many_pings`.
"""
import sys
import threading
from concurrent import futures

import grpc
from serving import serve


def echo(request, context):
    context.send_initial_metadata(
        [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-")]
    )
    return request


def stream(request, context):
    for _ in range(5):
        yield request


def mixed(request, context):
    for i in range(12):
        if i % 3 == 2:
            context.disable_next_message_compression()
        yield b"%d:" % i + (b"m" * (1 << 20) if i % 4 == 0 else b"")


def fail(request, context):
    context.set_trailing_metadata(
        (("x-t-bin", b"\x01\x02\x03"), ("grpc-status-details-bin", b"\x08\x03\x12\x03bad"))
    )
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad \u2713 input")


def sleep(request, context):
    done = threading.Event()
    context.add_callback(done.set)
    done.wait(3)
    return request


HANDLERS = {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Stream": grpc.unary_stream_rpc_method_handler(stream),
    "Mixed": grpc.unary_stream_rpc_method_handler(mixed),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
}


def main():
    host = sys.argv[1]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        compression=grpc.Compression.Gzip,
        options=[
            ("grpc.http2.min_ping_interval_without_data_ms", 60000),
            ("grpc.http2.max_ping_strikes", 1),
        ],
    )
    serve(server, "ccore.Test", HANDLERS, host)


if __name__ == "__main__":
    main()
