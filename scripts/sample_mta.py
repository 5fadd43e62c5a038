"""Writes seeded sample MTA turnstile weekly files in the real layout.

usage: sample_mta.py OUT_DIR FIRST_SATURDAY WEEKS ROWS_PER_WEEK
"""
import datetime
import os
import random
import sys

HEADER = "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS" + " " * 63
STATIONS = [("59 ST", "NQR456W", "BMT"), ("B'WAY-LAFAYETTE", "BDFQ6", "IND"), ("LEXINGTON AV/53", "EM6", "IND"),
            ("ST. GEORGE", "1", "SRT"), ("GRD CNTRL-42 ST", "4567S", "IRT"), ("125 ST", "456", "IRT")]


def main(out, first, weeks, rows):
    rng = random.Random(42)
    sat = datetime.date.fromisoformat(first)
    for w in range(weeks):
        day = sat + datetime.timedelta(days=7 * w)
        path = os.path.join(out, "turnstile_%s.txt" % day.strftime("%y%m%d"))
        with open(path, "w") as f:
            f.write(HEADER + "\n")
            for i in range(rows):
                st, lines, div = rng.choice(STATIONS)
                d = day - datetime.timedelta(days=6 - i % 7)
                desc = "RECOVR AUD" if rng.random() < 0.05 else "REGULAR"
                f.write("A%03d,R%03d,02-00-%02d,%s,%s,%s,%s,%02d:00:00,%s,%d,%d\n" % (
                    rng.randrange(999), rng.randrange(999), rng.randrange(8), st, lines, div,
                    d.strftime("%m/%d/%Y"), (i % 6) * 4, desc, rng.randrange(3_500_000_000), rng.randrange(2_000_000)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
