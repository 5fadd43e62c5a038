"""Seeded generators of realistic benchmark inputs.

usage: gen.py mta OUT ROWS | gen.py yellow OUT ROWS [--gzip]
"""
import datetime
import gzip
import random
import sys

MTA_HEADER = "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS" + " " * 63
STATIONS = [("59 ST", "NQR456W", "BMT"), ("B'WAY-LAFAYETTE", "BDFQ6", "IND"), ("LEXINGTON AV/53", "EM6", "IND"),
            ("ST. GEORGE", "1", "SRT"), ("GRD CNTRL-42 ST", "4567S", "IRT"), ("125 ST", "456", "IRT"),
            ("34 ST-HERALD SQ", "BDFMNQRW", "BMT"), ("TIMES SQ-42 ST", "1237ACENQRSW", "IRT")]
YELLOW_HEADER = ("VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
                 "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,"
                 "tolls_amount,improvement_surcharge,total_amount,congestion_surcharge")


def mta(out, rows, saturday=datetime.date(2022, 1, 8)):
    rng = random.Random(7)
    # A real week: each turnstile reports every 4 hours; counters grow.
    with out:
        out.write(MTA_HEADER + "\n")
        n = 0
        unit = 0
        while n < rows:
            unit += 1
            st, lines, div = rng.choice(STATIONS)
            ca, ru, scp = "A%03d" % (unit % 700), "R%03d" % (unit % 500), "%02d-00-%02d" % (unit % 7, unit % 10)
            entries, exits = rng.randrange(3_500_000_000), rng.randrange(2_000_000_000)
            for k in range(42):
                if n >= rows:
                    break
                d = saturday - datetime.timedelta(days=6 - k // 6)
                entries += rng.randrange(400)
                exits += rng.randrange(300)
                desc = "RECOVR AUD" if rng.random() < 0.01 else "REGULAR"
                out.write("%s,%s,%s,%s,%s,%s,%s,%02d:00:00,%s,%010d,%010d\n" % (
                    ca, ru, scp, st, lines, div, d.strftime("%m/%d/%Y"), (k % 6) * 4, desc, entries, exits))
                n += 1


def yellow(out, rows):
    rng = random.Random(11)
    base = datetime.datetime(2019, 1, 1)
    with out:
        out.write(YELLOW_HEADER + "\n")
        for i in range(rows):
            start = base + datetime.timedelta(seconds=int(i * 2678400 / rows) + rng.randrange(60))
            end = start + datetime.timedelta(seconds=rng.randrange(120, 3600))
            dist = rng.randrange(10, 2500) / 100
            fare = round(2.5 + dist * 2.5, 2)
            tip = round(fare * rng.choice([0, 0, 0.1, 0.15, 0.2]), 2)
            total = round(fare + 0.5 + 0.5 + tip + 0.3, 2)
            out.write("%d,%s,%s,%d,%.2f,%d,%s,%d,%d,%d,%.2f,%s,0.5,%.2f,0,0.3,%.2f,%s\n" % (
                rng.choice([1, 2]), start.strftime("%Y-%m-%d %H:%M:%S"), end.strftime("%Y-%m-%d %H:%M:%S"),
                rng.choice([1, 1, 1, 2, 3, 5]), dist, 1, "N", rng.randrange(1, 266), rng.randrange(1, 266),
                rng.choice([1, 1, 2]), fare, rng.choice(["0", "0.5", "1"]), tip, total,
                rng.choice(["", "2.5", "0"])))


if __name__ == "__main__":
    kind, path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    gz = "--gzip" in sys.argv
    f = gzip.open(path, "wt", compresslevel=6) if gz else open(path, "w")
    (mta if kind == "mta" else yellow)(f, rows)
