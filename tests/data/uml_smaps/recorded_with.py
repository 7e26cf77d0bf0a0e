import sys, os, ctypes
sys.path.insert(0,'/work/main/src')
from anonvma.live import syscalls as s
B=0x4000000000
F=s.MAP_PRIVATE|s.MAP_ANONYMOUS|s.MAP_FIXED
s.mmap(B, 4*4096, 3, F)
s.prctl_set_vma_anon_name(B+4096, 4096, b'hello world')
for i in range(4): ctypes.c_char.from_address(B+i*4096).value=b'x'
s.mmap(B+8*4096, 2*4096, 1, F)
ctypes.c_char.from_address(B+8*4096).value  # read fault
s.madvise(B+8*4096, 4096, s.MADV['dontfork'])
pid=os.fork()
if pid==0:
    out=open('/proc/self/smaps').read()
    blocks=out.split('\n')
    keep=[]; on=False
    for l in out.splitlines():
        if '-' in l.split(' ')[0] and len(l.split(' ')[0])>16 or l[:1].isdigit() and '-' in l[:20]:
            on = l.startswith('40000')
        if on: keep.append(l)
    open('/tmp/me/child.txt','w').write('\n'.join(keep)+'\n')
    os._exit(0)
os.waitpid(pid,0)
out=open('/proc/self/smaps').read()
keep=[]; on=False
for l in out.splitlines():
    if l[:1] in '0123456789abcdef' and '-' in l[:25] and ' ' in l:
        on = l.startswith('40000')
    if on: keep.append(l)
open('/tmp/me/parent.txt','w').write('\n'.join(keep)+'\n')
