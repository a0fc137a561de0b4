#!/usr/bin/env python3
"""Code shape: files over 600 lines and functions over 70 lines in Sources/.

A function may be longer when the line before its declaration (or its doc comment)
says why, with a comment containing "long:". Exits 1 when anything is over.
Usage: python3 tools/shape.py [--list]
"""
import os, re, sys

FILE_MAX, FUNC_MAX = 600, 70
decl = re.compile(r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|internal|private|fileprivate|package|static|mutating|nonmutating|override|final|@inlinable|@discardableResult|nonisolated)\s+)*(?:func\s+\S|init[?!]?\s*[(<]|subscript\s*[(<]|var\s+\w+\s*:[^=]*\{\s*$)')

def strip(line):
    # drop string literals and line comments well enough for brace counting
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    return line.split('//', 1)[0]

def functions(lines):
    i = 0
    while i < len(lines):
        if decl.match(lines[i]):
            depth, started, j = 0, False, i
            while j < len(lines):
                s = strip(lines[j])
                depth += s.count('{') - s.count('}')
                if '{' in s: started = True
                if started and depth <= 0: break
                if not started and j > i + 8: break
                j += 1
            if started:
                yield i, j
        i += 1

def excused(lines, i):
    k = i - 1
    while k >= 0 and (lines[k].strip().startswith('///') or lines[k].strip().startswith('//') or lines[k].strip().startswith('@')):
        if 'long:' in lines[k]: return True
        k -= 1
    return False

bad = []
for root, _, files in os.walk('Sources'):
    for f in sorted(files):
        if not f.endswith('.swift'): continue
        p = os.path.join(root, f)
        lines = open(p, encoding='utf-8').read().split('\n')
        if len(lines) - 1 > FILE_MAX: bad.append(f'{p}: {len(lines) - 1} lines (file limit {FILE_MAX})')
        for a, b in functions(lines):
            n = b - a + 1
            if n > FUNC_MAX and not excused(lines, a):
                bad.append(f'{p}:{a + 1}: function of {n} lines: {lines[a].strip()[:80]}')
for b in sorted(bad): print(b)
print(f'shape: {len(bad)} over the limits', file=sys.stderr)
sys.exit(1 if bad else 0)
