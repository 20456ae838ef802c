/* Benchmark kernel: introsort (quicksort with a median-of-three pivot,
 * insertion sort for short ranges, heapsort past a depth limit) of N
 * pseudo-random 32-bit integers. The sort alone is timed; then the result
 * is verified and hashed, and the check is that hash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernel.h"

#define N ((size_t)6 << 20)
#define SMALL 16

static void swap(int32_t *a, int32_t *b)
{
	int32_t t = *a;

	*a = *b;
	*b = t;
}

static void insertion_sort(int32_t *a, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		int32_t v = a[i];
		size_t j = i;

		for (; j > 0 && a[j - 1] > v; j--)
			a[j] = a[j - 1];
		a[j] = v;
	}
}

static void sift_down(int32_t *a, size_t root, size_t n)
{
	for (;;) {
		size_t child = 2 * root + 1;

		if (child >= n)
			return;
		if (child + 1 < n && a[child + 1] > a[child])
			child++;
		if (a[root] >= a[child])
			return;
		swap(&a[root], &a[child]);
		root = child;
	}
}

static void heap_sort(int32_t *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(a, i, n);
	for (size_t end = n; end-- > 1;) {
		swap(&a[0], &a[end]);
		sift_down(a, 0, end);
	}
}

/* Orders a[0], a[mid] and a[n-1], so that the pivot a[mid] is their median
 * and the two ends act as sentinels for the partition loop. */
static int32_t median_of_three(int32_t *a, size_t n)
{
	size_t mid = n / 2;

	if (a[mid] < a[0])
		swap(&a[mid], &a[0]);
	if (a[n - 1] < a[0])
		swap(&a[n - 1], &a[0]);
	if (a[n - 1] < a[mid])
		swap(&a[n - 1], &a[mid]);
	return a[mid];
}

/* Sorts a[0..n) with quicksort, recursing into the smaller side and looping
 * on the larger, until depth runs out (then heapsort) or ranges are short
 * (left for one insertion sort pass at the end). */
static void intro_loop(int32_t *a, size_t n, int depth)
{
	while (n > SMALL) {
		int32_t pivot;
		size_t i, j;

		if (depth-- == 0) {
			heap_sort(a, n);
			return;
		}
		pivot = median_of_three(a, n);
		i = 0;
		j = n - 1;
		/* Hoare partition: afterwards a[0..j] <= pivot <= a[j+1..n). */
		for (;;) {
			while (a[++i] < pivot)
				;
			while (a[--j] > pivot)
				;
			if (i >= j)
				break;
			swap(&a[i], &a[j]);
		}
		j++;
		if (j < n - j) {
			intro_loop(a, j, depth);
			a += j;
			n -= j;
		} else {
			intro_loop(a + j, n - j, depth);
			n = j;
		}
	}
}

static void intro_sort(int32_t *a, size_t n)
{
	int depth = 0;

	for (size_t m = n; m > 1; m >>= 1)
		depth += 2;
	intro_loop(a, n, depth);
	insertion_sort(a, n);
}

int main(void)
{
	int32_t *a = malloc(N * sizeof(*a));
	uint64_t seed = 0x2545f4914f6cdd1dull, hash = 0xcbf29ce484222325ull, sum = 0, t0, t1;
	char check[64];

	if (!a) {
		printf("Status: 500\nContent-Type: text/plain\n\nout of memory\n");
		return 1;
	}
	for (size_t i = 0; i < N; i++) {
		a[i] = (int32_t)(kernel_rand(&seed) >> 32);
		sum += (uint64_t)(int64_t)a[i];
	}

	t0 = kernel_now_ns();
	intro_sort(a, N);
	t1 = kernel_now_ns();

	for (size_t i = 0; i < N; i++) {
		if (i > 0 && a[i - 1] > a[i]) {
			printf("Status: 500\nContent-Type: text/plain\n\nnot sorted at %zu\n", i);
			return 1;
		}
		sum -= (uint64_t)(int64_t)a[i];
		hash = (hash ^ (uint32_t)a[i]) * 0x100000001b3ull;
	}
	if (sum != 0) {
		printf("Status: 500\nContent-Type: text/plain\n\nelements were lost\n");
		return 1;
	}
	snprintf(check, sizeof(check), "%016llx", (unsigned long long)hash);
	kernel_report("sort", t1 - t0, check);
	free(a);
	return 0;
}
