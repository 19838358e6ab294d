"""The official InfluxDB 2 Python client (influxdb-client) writing to the
server's /api/v2/write: the same points in every precision, plain and
gzip, then a batch with a string field, which must come back as a 400
naming its line.

Usage: influx_client.py URL TOKEN SECONDS
Prints one JSON object: what each write answered.
"""

import json
import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

url, token, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
SCALE = {WritePrecision.NS: 10**9, WritePrecision.US: 10**6, WritePrecision.MS: 10**3, WritePrecision.S: 1}
out = {"written": [], "refused": None}
for gzip in (False, True):
    with InfluxDBClient(url=url, token=token, org="ops", enable_gzip=gzip) as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        for precision, scale in SCALE.items():
            station = f"{precision}-{'gzip' if gzip else 'plain'}"
            points = [
                Point("weather").tag("station", station).field("temp", 21.5 + i).field("humidity", 40 + i)
                .time((seconds + 60 * i) * scale, precision)
                for i in range(3)
            ]
            write.write(bucket="metrics", record=points, write_precision=precision)
            out["written"].append(station)
        if not gzip:
            try:
                write.write(bucket="metrics", write_precision=WritePrecision.S, record=[
                    f"weather,station=bad temp=1 {seconds}",
                    f'weather,station=bad note="a string" {seconds}',
                ])
            except ApiException as e:
                out["refused"] = {"status": e.status, "body": json.loads(e.body)}
print(json.dumps(out))
