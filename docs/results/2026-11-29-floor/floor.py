"""The least Python a naming pair can run: every step of the model's naming pair inlined into
two straight-line functions (no calls but the C ones, no strategy, no walk), on the model's own
objects and index at 64,000 VMAs, timed beside the kernel's mprotect merge-3 pair as in
benchmarks/model_ops.py. Not faithful code: a floor for what Python 3.11 can do."""
import ctypes, statistics, sys, time
from bisect import bisect_right
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3] / "benchmarks"))
import model_ops as mo
from anonvma.anon_name import VALID_BYTES
from anonvma.model.names import AnonVmaName
from anonvma.model.vma import Vma

COUNT = 64000
mm = mo.build(COUNT, "refcount")
host = mo.HostLayout(COUNT)
idx = mm.index
live = mm.strategy.live
counters = mm.name_counters
middle = mo.middle_of(COUNT)
inner = mo.BASE + 3 * mo.PAGE * middle + mo.PAGE
PAGE = mo.PAGE
NAME = mo.NAME

def rename(addr, length, name):
    raw = name.encode("utf-8", "surrogatepass")
    if raw.find(0) >= 0 or len(raw) >= 80 or raw.translate(None, VALID_BYTES):
        raise OSError(22, "bad name")
    obj = AnonVmaName(raw.decode("ascii"))
    live.add(obj); counters.allocs += 1; counters.bytes_allocated += len(raw) + 1; counters.bytes_copied += len(raw) + 1
    if addr % PAGE or not 0 <= addr or length <= 0:
        raise OSError(22, "bad range")
    end = addr + ((length + PAGE - 1) & ~(PAGE - 1))
    maxes = idx._maxes
    ci = bisect_right(maxes, addr)
    ends = idx._ends[ci]
    chunk = idx._chunks[ci]
    j = bisect_right(ends, addr)
    vma = chunk[j]
    if vma.file is not None:
        raise OSError(9, "")
    old = vma.anon_name
    if vma.start == addr and vma.end == end:  # merge back with both neighbours
        prev, nxt = chunk[j - 1], chunk[j + 1]
        if (prev.flags == vma.flags and prev.file is None and prev.anon_name.name == obj.name
                and nxt.flags == vma.flags and nxt.file is None and nxt.anon_name.name == obj.name
                and prev.anon_vma is nxt.anon_vma):
            merged = Vma(prev.start, nxt.end, prev.flags, prev.pgoff, None, prev.anon_vma, prev.anon_chain, prev.anon_name)
            chunk[j - 1:j + 2] = (merged,)
            ends[j - 1:j + 2] = (nxt.end,)
            idx.count -= 2
            for o in (old, nxt.anon_name):
                o.refcount -= 1; counters.puts += 1
                if not o.refcount:
                    o.freed = True; live.discard(o); counters.frees += 1
    else:  # split in three
        old.refcount += 2; counters.gets += 2
        below = Vma(vma.start, addr, vma.flags, vma.pgoff, None, vma.anon_vma, vma.anon_chain, old)
        mid = Vma(addr, end, vma.flags, vma.pgoff + ((addr - vma.start) >> 12), None, vma.anon_vma, vma.anon_chain, obj)
        obj.refcount += 1; counters.gets += 1
        old.refcount -= 1; counters.puts += 1
        upper = Vma(end, vma.end, vma.flags, vma.pgoff + ((end - vma.start) >> 12), None, vma.anon_vma, vma.anon_chain, old)
        chunk[j:j + 1] = (below, mid, upper)
        ends[j:j + 1] = (addr, end, vma.end)
        idx.count += 2
    obj.refcount -= 1; counters.puts += 1
    if not obj.refcount:
        obj.freed = True; live.discard(obj); counters.frees += 1

def pair():
    rename(inner, PAGE, "other")
    rename(inner, PAGE, NAME)

steps = mo.steps(mm, COUNT, host)
model_pair, kernel_pair, _ = steps["set_anon_name interior + back (split 3, merge)"]
pair(); assert idx.count == COUNT and not idx.consistency_errors()
from anonvma.model.check import check_machine
check_machine(mm.machine)
f, m, k = [], [], []
for _ in range(40):
    f.append(mo.batch_us(pair, 50)); m.append(mo.batch_us(model_pair, 50)); k.append(mo.batch_us(kernel_pair, 50))
check_machine(mm.machine)
F, M, K = map(statistics.median, (f, m, k))
print(f"naming pair at {COUNT:,} VMAs, us (median of 40 batches of 50, default settings, GC on):")
print(f"  straight-line floor {F:.2f}   model {M:.2f}   kernel mprotect merge-3 pair {K:.2f}")
print(f"  floor/kernel {F/K:.2f}   model/kernel {M/K:.2f}   model/floor {M/F:.2f}")
host.close()

# What the kernel's call boundaries alone cost: the naming path passes through about eleven
# functions per call (prctl, madvise_set_anon_name, strndup/alloc, the range check, the walk,
# madvise_vma_anon_name, madvise_update_vma, vma_modify or vma_merge, the split or the merge
# test, replace_anon_vma_name, the put); here eleven nested calls with five arguments that
# do nothing else, twice (a pair).
def c11(a, b, c, d, e): return None
def c10(a, b, c, d, e): return c11(a, b, c, d, e)
def c9(a, b, c, d, e): return c10(a, b, c, d, e)
def c8(a, b, c, d, e): return c9(a, b, c, d, e)
def c7(a, b, c, d, e): return c8(a, b, c, d, e)
def c6(a, b, c, d, e): return c7(a, b, c, d, e)
def c5(a, b, c, d, e): return c6(a, b, c, d, e)
def c4(a, b, c, d, e): return c5(a, b, c, d, e)
def c3(a, b, c, d, e): return c4(a, b, c, d, e)
def c2(a, b, c, d, e): return c3(a, b, c, d, e)
def c1(a, b, c, d, e): return c2(a, b, c, d, e)
def calls_pair():
    c1(mm, inner, PAGE, NAME, None)
    c1(mm, inner, PAGE, NAME, None)
C = statistics.median(mo.batch_us(calls_pair, 50) for _ in range(40))
print(f"  eleven nested calls per syscall, a pair: {C:.2f}; floor + calls {F + C:.2f} "
      f"= {(F + C) / K:.2f} of the kernel")
