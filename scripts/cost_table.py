#!/usr/bin/env python3
"""Prints a profile's cost table as markdown (docs/calibration.md "Every cost of the spr profile").

Usage: python3 scripts/cost_table.py [profiles/spr.json]
"""
import json
import sys


def fmt(x):
    return '%.6g' % x if isinstance(x, float) else str(x)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else 'profiles/spr.json'
    profile = json.load(open(path))
    default_range = profile.get('assumed_range', 0)
    print('| name | cycles | provenance | plausible range | run variation | source | earlier values |')
    print('|---|---|---|---|---|---|---|')
    for c in profile['costs']:
        rng = ''
        if c['provenance'] == 'assumed':
            lo, hi = c['range'] if 'range' in c else (c['cycles'] * (1 - default_range), c['cycles'] * (1 + default_range))
            rng = '%s-%s' % (fmt(float(lo)), fmt(float(hi)))
        earlier = '; '.join('%s until %s (%s)' % (fmt(h['cycles']), h['date'], h['reason']) for h in c.get('history', []))
        print('| `%s` | %s | %s | %s | %s | %s | %s |' % (
            c['name'], fmt(c['cycles']), c['provenance'], rng, fmt(c.get('run_variation', '')), c['source'], earlier))


if __name__ == '__main__':
    main()
