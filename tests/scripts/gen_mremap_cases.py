#!/usr/bin/env python3
# Regenerates tests/scripts/mremap_*.jsonl (run from the repo root); outputs are recorded on the oracle kernel.
"""Write the merge.c mremap cases as ops scripts, unnamed / same-named / differently-named."""
import json
P = 4096
def mm(addr, n, name): 
    out = [{"op": "mmap", "addr": addr*P, "len": n*P, "prot": "rw"}]
    if name is not None:
        out.append({"op": "name", "addr": addr*P, "len": n*P, "name": name})
    return out
def mv(src, n, dst, extra=()):
    return [{"op": "mremap", "addr": src*P, "len": n*P, "new_len": n*P, "flags": ["maymove", "fixed", *extra], "new_addr": dst*P}]
def touch(p): return [{"op": "touch", "addr": p*P}]
MAPS = [{"op": "maps"}]
def cases(n1, n2, n3):
    c = {}
    c["unfaulted_to_faulted"] = mm(1,5,n1)+mm(7,5,n2)+mv(7,5,1007)+touch(1)+mv(1007,5,6)+MAPS
    c["unfaulted_behind_faulted"] = mm(6,5,n1)+mm(12,5,n2)+mv(12,5,1012)+touch(6)+mv(1012,5,1)+MAPS
    c["unfaulted_between_faulted"] = (mm(1,5,n1)+mm(7,5,n2)+mm(14,5,n3)+mv(7,5,1007)+mv(14,5,1014)
        +touch(1)+touch(1014)+mv(1014,5,11)+mv(1007,5,6)+MAPS)
    c["unfaulted_between_faulted_unfaulted"] = (mm(1,5,n1)+mm(7,5,n2)+mm(14,5,n3)+mv(7,5,1007)+mv(14,5,1014)
        +touch(1)+mv(1014,5,11)+mv(1007,5,6)+MAPS)
    c["faulted_moved_back_home"] = (mm(1,15,n1)+touch(1)+touch(6)+touch(11)+mv(6,5,1006)+MAPS+mv(1006,5,6)+MAPS)
    c["faulted_to_unfaulted_prev_dontunmap"] = (mm(1,5,n1)+mm(11,5,n2)+touch(11)+mv(11,5,6,("dontunmap",))+MAPS)
    c["faulted_to_unfaulted_next_dontunmap"] = (mm(6,5,n1)+mm(11,5,n2)+touch(11)+mv(11,5,1,("dontunmap",))+MAPS)
    c["unfaulted_self_adjacent"] = (mm(1,5,n1)+mv(1,5,6)+MAPS+mv(6,5,3)+MAPS)
    c["grow_in_place_into_named_neighbour"] = (mm(1,2,n1)+mm(5,2,n2)+[{"op":"mremap","addr":P,"len":2*P,"new_len":4*P,"flags":[]}]+MAPS
        +[{"op":"mremap","addr":P,"len":4*P,"new_len":8*P,"flags":[]}]+MAPS+[{"op":"mremap","addr":P,"len":4*P,"new_len":2*P,"flags":[]}]+MAPS)
    c["errors"] = (mm(1,4,n1)+[{"op":"mremap","addr":P+1,"len":P,"new_len":P,"flags":[]},
        {"op":"mremap","addr":100*P,"len":P,"new_len":P,"flags":[]},
        {"op":"mremap","addr":P,"len":8*P,"new_len":9*P,"flags":[]},
        {"op":"mremap","addr":P,"len":P,"new_len":2*P,"flags":["maymove","fixed","dontunmap"],"new_addr":50*P},
        {"op":"mremap","addr":P,"len":2*P,"new_len":2*P,"flags":["maymove","fixed"],"new_addr":2*P},
        {"op":"mremap","addr":P,"len":P,"new_len":0,"flags":[]},
        {"op":"mremap","addr":P,"len":4*P,"new_len":4*P,"flags":["maymove","fixed"],"new_addr":50*P+1}]+MAPS)
    c["fork_then_move_in_child"] = (mm(1,5,n1)+touch(1)+[{"op":"fork"}]+[dict(o, pid=1) for o in mm(20,5,n2)+mv(20,5,6)+[{"op":"maps"}]])
    return c
for variant, names in (("unnamed", (None, None, None)), ("samename", ("pool", "pool", "pool")), ("diffnames", ("a", "b", "c"))):
    for case, ops in cases(*names).items():
        with open(f"tests/scripts/mremap_{case}_{variant}.jsonl", "w") as f:
            for o in ops: f.write(json.dumps(o) + "\n")
