#!/usr/bin/env python3
"""Turn harness/run's results (TSV: chapter, check, status, points, max, seconds, detail)
into JSON and/or JUnit XML.  Usage: report.py RESULTS JSON_FILE|- JUNIT_FILE|-"""

import json
import sys
import xml.etree.ElementTree as ET


def main():
    results, json_path, junit_path = sys.argv[1:4]
    rows = []
    with open(results) as f:
        for line in f:
            ch, check, status, got, pts, secs, detail = line.rstrip("\n").split("\t")
            rows.append({"chapter": ch, "check": check, "status": status.lower(), "points": int(got),
                         "max_points": int(pts), "seconds": int(secs), "detail": detail})
    if json_path != "-":
        chapters = {}
        for r in rows:
            c = chapters.setdefault(r["chapter"], {"score": 0, "max": 0, "checks": []})
            c["checks"].append(r)
            if r["status"] != "skip":
                c["score"] += r["points"]
                c["max"] += r["max_points"]
        summary = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "skip")}
        with open(json_path, "w") as f:
            json.dump({"chapters": chapters, "passed": summary["pass"], "failed": summary["fail"],
                       "skipped": summary["skip"]}, f, indent=2)
            f.write("\n")
    if junit_path != "-":
        suites = ET.Element("testsuites")
        for ch in dict.fromkeys(r["chapter"] for r in rows):
            mine = [r for r in rows if r["chapter"] == ch]
            suite = ET.SubElement(suites, "testsuite", name=ch, tests=str(len(mine)),
                                  failures=str(sum(r["status"] == "fail" for r in mine)),
                                  skipped=str(sum(r["status"] == "skip" for r in mine)))
            for r in mine:
                case = ET.SubElement(suite, "testcase", classname=ch, name=r["check"], time=str(r["seconds"]))
                if r["status"] == "fail":
                    ET.SubElement(case, "failure", message=r["detail"][:500]).text = r["detail"]
                elif r["status"] == "skip":
                    ET.SubElement(case, "skipped", message=r["detail"])
        ET.ElementTree(suites).write(junit_path, encoding="unicode", xml_declaration=True)


if __name__ == "__main__":
    main()
