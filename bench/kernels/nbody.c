/* Benchmark kernel: the classic 5-body simulation (the Sun and the four
 * gas giants, in solar masses, AU and years), advanced STEPS times with a
 * time step of 0.01. The check is the system's energy afterwards. */
#include <math.h>
#include <stdio.h>

#include "kernel.h"

#define STEPS 10000000
#define N_BODIES 5
#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24

struct body {
	double x, y, z;
	double vx, vy, vz;
	double mass;
};

/* Positions in AU, velocities in AU per day (scaled to per year below),
 * masses in solar masses. */
static struct body bodies[N_BODIES] = {
        {0, 0, 0, 0, 0, 0, 1},
        {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
         1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05,
         9.54791938424326609e-04},
        {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
         -2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05,
         2.85885980666130812e-04},
        {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
         2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05,
         4.36624404335156298e-05},
        {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
         2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05,
         5.15138902046611451e-05},
};

/* Converts the table's units and gives the Sun the momentum that makes the
 * system's total zero. */
static void setup(struct body *b)
{
	double px = 0, py = 0, pz = 0;

	for (int i = 0; i < N_BODIES; i++) {
		b[i].vx *= DAYS_PER_YEAR;
		b[i].vy *= DAYS_PER_YEAR;
		b[i].vz *= DAYS_PER_YEAR;
		b[i].mass *= SOLAR_MASS;
		px += b[i].vx * b[i].mass;
		py += b[i].vy * b[i].mass;
		pz += b[i].vz * b[i].mass;
	}
	b[0].vx = -px / SOLAR_MASS;
	b[0].vy = -py / SOLAR_MASS;
	b[0].vz = -pz / SOLAR_MASS;
}

static double energy(const struct body *b)
{
	double e = 0;

	for (int i = 0; i < N_BODIES; i++) {
		e += 0.5 * b[i].mass * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
		for (int j = i + 1; j < N_BODIES; j++) {
			double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;

			e -= b[i].mass * b[j].mass / sqrt(dx * dx + dy * dy + dz * dz);
		}
	}
	return e;
}

/* One step: every pair's pull on the velocities, then the positions. */
static void advance(struct body *b, double dt)
{
	for (int i = 0; i < N_BODIES; i++) {
		for (int j = i + 1; j < N_BODIES; j++) {
			double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
			double d2 = dx * dx + dy * dy + dz * dz;
			double mag = dt / (d2 * sqrt(d2));

			b[i].vx -= dx * b[j].mass * mag;
			b[i].vy -= dy * b[j].mass * mag;
			b[i].vz -= dz * b[j].mass * mag;
			b[j].vx += dx * b[i].mass * mag;
			b[j].vy += dy * b[i].mass * mag;
			b[j].vz += dz * b[i].mass * mag;
		}
	}
	for (int i = 0; i < N_BODIES; i++) {
		b[i].x += dt * b[i].vx;
		b[i].y += dt * b[i].vy;
		b[i].z += dt * b[i].vz;
	}
}

int main(void)
{
	char check[64];
	uint64_t t0, t1;

	setup(bodies);
	t0 = kernel_now_ns();
	for (long n = 0; n < STEPS; n++)
		advance(bodies, 0.01);
	t1 = kernel_now_ns();

	snprintf(check, sizeof(check), "%.9f", energy(bodies));
	kernel_report("nbody", t1 - t0, check);
	return 0;
}
