"""A minimal evlog client in Python, written from proto/evlog/v1/evlog.proto alone.

It follows the contract the proto's header states (see docs/protocol.md): find the
leader by following NOT_LEADER hints, retry unknown outcomes with the same producer id
and sequence (so a retry never writes twice), wait out RESOURCE_EXHAUSTED, and treat a
Subscribe stream that stays silent for several heartbeat intervals as a dead leader.

    python3 evlog_example.py --bootstrap 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003

Needs grpcio and grpcio-tools (requirements.txt); generates the stubs at start.
"""

import argparse
import itertools
import os
import random
import sys
import tempfile
import threading
import time

import grpc
from grpc_tools import protoc

PROTO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "proto")


def load_stubs(proto_root):
    """Compiles evlog.proto into a temporary directory and imports the modules."""
    out = tempfile.mkdtemp(prefix="evlog-py-")
    rc = protoc.main(["protoc", f"-I{proto_root}", f"--python_out={out}",
                      f"--grpc_python_out={out}", "evlog/v1/evlog.proto"])
    if rc != 0:
        raise SystemExit(f"protoc failed on {proto_root}/evlog/v1/evlog.proto")
    sys.path.insert(0, out)
    from evlog.v1 import evlog_pb2, evlog_pb2_grpc
    return evlog_pb2, evlog_pb2_grpc


pb, pb_grpc = load_stubs(PROTO_ROOT)
Code = pb.ErrorCode

# In-band codes after which a Produce's outcome is unknown: retry with the same sequence.
UNKNOWN_OUTCOME = {Code.ERROR_CODE_NOT_LEADER, Code.ERROR_CODE_UNAVAILABLE,
                   Code.ERROR_CODE_TIMEOUT, Code.ERROR_CODE_SHUTTING_DOWN}
# gRPC statuses that mean the call broke on the way: the outcome is unknown too.
CALL_BROKE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN}


class EvlogError(Exception):
    """A final answer: retrying the same request would get the same one."""


class Client:
    def __init__(self, bootstrap, deadline_s=30.0):
        self.bootstrap = bootstrap
        self.deadline_s = deadline_s
        self.channels = {}
        self.producer_id = random.getrandbits(63) | 1
        self.next_sequence = {}   # (topic, partition) -> next sequence number
        self.leaders = {}         # (topic, partition) -> client address
        self.rotation = itertools.cycle(bootstrap)

    def channel(self, addr):
        if addr not in self.channels:
            self.channels[addr] = grpc.insecure_channel(addr)
        return self.channels[addr]

    def create_topic(self, name, partitions, replication_factor):
        addr, deadline = next(self.rotation), time.monotonic() + self.deadline_s
        request = pb.CreateTopicRequest(name=name, config=pb.TopicConfig(
            partitions=partitions, replication_factor=replication_factor))
        while True:
            try:
                answer = pb_grpc.AdminStub(self.channel(addr)).CreateTopic(request, timeout=5)
            except grpc.RpcError as e:
                if e.code() not in CALL_BROKE or time.monotonic() > deadline:
                    raise
                addr = next(self.rotation)
                time.sleep(0.1)
                continue
            code = answer.error.code
            if code in (Code.ERROR_CODE_OK, Code.ERROR_CODE_TOPIC_EXISTS):
                return
            if code in (Code.ERROR_CODE_NOT_LEADER, Code.ERROR_CODE_UNAVAILABLE) \
                    and time.monotonic() < deadline:
                addr = answer.error.leader_addr or next(self.rotation)
                time.sleep(max(answer.error.retry_after_ms, 100) / 1000)
                continue
            raise EvlogError(f"create topic {name}: {Code.Name(code)}: {answer.error.message}")

    def produce(self, topic, partition, values):
        """Appends `values` in one request; returns (base_offset, duplicate)."""
        key = (topic, partition)
        sequence = self.next_sequence.get(key, 0)
        answer = self.send(topic, partition, sequence, values)
        self.next_sequence[key] = sequence + len(values)
        return answer

    def send(self, topic, partition, sequence, values):
        """Sends one request until a final answer; retries reuse `sequence`."""
        key = (topic, partition)
        request = pb.ProduceRequest(
            topic=topic, partition=partition, producer_id=self.producer_id,
            first_sequence=sequence, events=[pb.Event(value=v) for v in values])
        deadline = time.monotonic() + self.deadline_s
        while True:
            addr = self.leaders.get(key) or next(self.rotation)
            wait_ms = 50
            try:
                answer = pb_grpc.EventLogStub(self.channel(addr)).Produce(request, timeout=5)
            except grpc.RpcError as e:
                if e.code() not in CALL_BROKE:
                    raise EvlogError(f"produce refused by the transport: {e.code()}: {e.details()}")
                self.leaders.pop(key, None)   # unknown outcome: retry, same sequence
            else:
                code = answer.error.code
                if code == Code.ERROR_CODE_OK:
                    self.leaders[key] = addr
                    return answer.base_offset, answer.duplicate
                if code in UNKNOWN_OUTCOME:
                    self.leaders[key] = answer.error.leader_addr or None
                elif code != Code.ERROR_CODE_RESOURCE_EXHAUSTED:
                    raise EvlogError(f"produce: {Code.Name(code)}: {answer.error.message}")
                wait_ms = max(wait_ms, answer.error.retry_after_ms)
            if time.monotonic() > deadline:
                raise EvlogError(f"produce to {topic}/{partition}: no answer in {self.deadline_s}s")
            time.sleep(wait_ms / 1000)

    def subscribe(self, topic, partition, offset, heartbeat_ms=1000):
        """Yields (offset, value) from `offset` on, following leader changes; yields
        ("heartbeat", high_watermark) for heartbeats."""
        key = (topic, partition)
        while True:
            addr = self.leaders.get(key) or next(self.rotation)
            request = pb.SubscribeRequest(topic=topic, partition=partition,
                                          start=pb.StartPosition(offset=offset),
                                          heartbeat_interval_ms=heartbeat_ms)
            call = pb_grpc.EventLogStub(self.channel(addr)).Subscribe(request)
            # Silence for 4 heartbeat intervals: the leader is frozen or cut off.
            watchdog = Watchdog(4 * heartbeat_ms / 1000, call.cancel)
            try:
                for message in call:
                    watchdog.reset()
                    if message.error.code != Code.ERROR_CODE_OK:
                        code = message.error.code
                        if code in (Code.ERROR_CODE_NOT_LEADER, Code.ERROR_CODE_UNAVAILABLE,
                                    Code.ERROR_CODE_SHUTTING_DOWN,
                                    Code.ERROR_CODE_SLOW_CONSUMER):
                            self.leaders[key] = message.error.leader_addr or None
                            break
                        raise EvlogError(f"subscribe: {Code.Name(code)}: {message.error.message}")
                    if message.heartbeat:
                        yield "heartbeat", message.high_watermark
                    for event in message.events:
                        offset = event.offset + 1
                        yield event.offset, event.value
            except grpc.RpcError as e:
                if e.code() not in CALL_BROKE:
                    raise
                self.leaders.pop(key, None)
            finally:
                watchdog.stop()
            time.sleep(0.1)


class Watchdog:
    """Calls `expire` unless reset within `seconds`."""

    def __init__(self, seconds, expire):
        self.seconds, self.expire, self.timer = seconds, expire, None
        self.reset()

    def reset(self):
        self.stop()
        self.timer = threading.Timer(self.seconds, self.expire)
        self.timer.daemon = True
        self.timer.start()

    def stop(self):
        if self.timer:
            self.timer.cancel()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="comma-separated client addresses")
    parser.add_argument("--topic", default="py-demo")
    args = parser.parse_args()
    client = Client(args.bootstrap.split(","))
    client.create_topic(args.topic, partitions=3, replication_factor=3)
    print(f"created topic {args.topic}")

    # 10 requests of 10 events to each partition.
    offsets = {}
    for partition in range(3):
        for batch in range(10):
            values = [f"p{partition}-{batch * 10 + i}".encode() for i in range(10)]
            base, duplicate = client.produce(args.topic, partition, values)
            assert not duplicate
            offsets[(partition, batch)] = base
    print("produced 300 events")

    # A retry of the last request of partition 0 (as after a lost answer): the node
    # answers with the original offsets and duplicate = true, and writes nothing.
    values = [f"p0-{90 + i}".encode() for i in range(10)]
    base, duplicate = client.send(args.topic, 0, 90, values)
    assert duplicate and base == offsets[(0, 9)], (base, duplicate)
    print(f"retry answered as a duplicate at offset {base}")

    # Read partition 0 back from its first event, then wait for a heartbeat.
    first = offsets[(0, 0)]
    expected = [f"p0-{i}".encode() for i in range(100)]
    received = []
    for offset, value in client.subscribe(args.topic, 0, first, heartbeat_ms=200):
        if offset == "heartbeat":
            if len(received) == len(expected):
                print(f"heartbeat with high watermark {value}")
                break
            continue
        received.append(value)
    assert received == expected, received[:5]
    print("subscribed: 100 events in order, each once")


if __name__ == "__main__":
    main()
