"""The peer a data engineer would write instead of lakefleet: a Celery fleet
(prefork, RabbitMQ broker) whose task downloads one file, converts it with
pyarrow (`read_csv` + `write_table`, zstd) and writes it to a local folder or
an S3 bucket (boto3 `put_object` of the file written in memory: one PUT, as
a data engineer would upload a file of a few MB). Used by bench.py's `peer` section, on the same files, source
server and cores as lakefleet's fleet.

worker:  celery -A celery_peer worker --pool prefork --concurrency 2
publish: python celery_peer.py publish QUEUE URL... (one task per URL)
"""
import os
import sys
import tempfile
import urllib.request

from celery import Celery

BROKER = os.environ.get("PEER_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("PEER_QUEUE", "celery-peer")
app = Celery("celery_peer", broker=BROKER)
app.conf.task_default_queue = QUEUE
app.conf.task_acks_late = True
app.conf.worker_prefetch_multiplier = 1
app.conf.broker_connection_retry_on_startup = True


_S3 = None


def _s3():
    global _S3
    if _S3 is None:
        import boto3
        _S3 = boto3.client("s3", endpoint_url=os.environ["PEER_S3_ENDPOINT"], aws_access_key_id="bench",
                           aws_secret_access_key="bench", region_name="us-east-1")
    return _S3


@app.task(name="convert")
def convert(url, dest):
    import pyarrow.csv as csv
    import pyarrow.parquet as pq
    with tempfile.NamedTemporaryFile(suffix=".csv") as tmp:
        with urllib.request.urlopen(url) as r:
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                tmp.write(chunk)
        tmp.flush()
        table = csv.read_csv(tmp.name)
    if dest.startswith("s3://"):
        import pyarrow as pa
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        bucket, key = dest[len("s3://"):].split("/", 1)
        _s3().put_object(Bucket=bucket, Key=key, Body=sink.getvalue().to_pybytes())  # one PUT: atomic
    else:
        # Written under a temporary name, then renamed: a reader never sees half a file.
        pq.write_table(table, dest + ".partial", compression="zstd")
        os.replace(dest + ".partial", dest)
    return table.num_rows


if __name__ == "__main__" and sys.argv[1] == "publish":
    dest = sys.argv[2]
    for url in sys.argv[3:]:
        name = url.rsplit("/", 1)[1].rsplit(".", 1)[0] + ".parquet"
        convert.apply_async((url, dest.rstrip("/") + "/" + name), queue=QUEUE)
