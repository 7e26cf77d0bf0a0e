/* The C twin of named_regions.py: three private anonymous regions named with prctl(PR_SET_VMA_ANON_NAME).
 *
 *     cc -O2 -o named_regions docs/examples/named_regions.c && anonvma run -- ./named_regions [FILE]
 *
 * A 64 MiB cache filled 8 MiB every 0.25 s, a 32 MiB arena (half written), a 4 MiB ring (never written),
 * then held for 1 s or until FILE exists. Fails with EINVAL on a kernel without CONFIG_ANON_VMA_NAME. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
#define MiB (1UL << 20)

static void *named(const char *name, size_t size, size_t touched)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, size, (unsigned long)name) != 0) {
		fprintf(stderr, "prctl(PR_SET_VMA_ANON_NAME, \"%s\"): %s%s\n", name, strerror(errno),
			errno == EINVAL ? " (this kernel lacks CONFIG_ANON_VMA_NAME)" : "");
		exit(1);
	}
	memset(p, 1, touched);
	return p;
}

int main(int argc, char **argv)
{
	char *cache = named("demo:cache", 64 * MiB, 0);
	named("demo:arena", 32 * MiB, 16 * MiB);
	named("demo:ring", 4 * MiB, 0);
	printf("pid %d: named 64 MiB, 32 MiB, 4 MiB\n", (int)getpid());
	fflush(stdout);
	for (int step = 0; step < 8; step++) {
		memset(cache + step * 8 * MiB, 1, 8 * MiB);
		usleep(250000);
	}
	if (argc > 1)
		while (access(argv[1], F_OK) != 0)
			usleep(50000);
	else
		sleep(1);
	return 0;
}
