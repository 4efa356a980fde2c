"""What the C-core test servers share: serve one service's handlers on HOST
(a free port), print `PORT <n>` once listening, and stop when stdin closes
(the test ends) or the process is killed."""
import sys

import grpc


def serve(server, service, handlers, host):
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    port = server.add_insecure_port(f"{host}:0")
    server.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()
    server.stop(0)
