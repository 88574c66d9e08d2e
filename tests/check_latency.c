/* Unit tests of the latency histogram that the host program and the benchmark share
 * (host/workloads.c): log-linear buckets from 1 us to 67 s, each value read back within 0.8 % by
 * its bucket, as the README says, and percentiles that do not stop at a fixed ceiling. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "case_runner.h"
#include "iobench.h"

#define TOP_US 67e6          /* the README's 67 s */
#define WITHIN 0.008         /* the README's 0.8 % */

static double relative_error(double read, double value)
{
    return fabs(read - value) / value;
}

struct worst
{
    double error, value;
};

static void note_read_back(struct worst *worst, int bucket, double value)
{
    double error = relative_error(latency_bucket_midpoint_us(bucket), value);

    if (error > worst->error)
    {
        worst->error = error;
        worst->value = value;
    }
}

/* One value of the sweep: in a log-linear bucket, none before the previous value's. */
static void sweep_to(double value, int *previous, struct worst *worst)
{
    int bucket = latency_bucket(value);

    ck_assert_int_ge(bucket, *previous);
    ck_assert_int_lt(bucket, LATENCY_BUCKETS - 1);  /* not the bucket for "more than the top" */
    note_read_back(worst, bucket, value);
    *previous = bucket;
}

START_TEST(every_value_from_1_us_to_67_s_reads_back_within_0_8_percent)
{
    struct worst worst = { 0, 0 };
    int previous = 0;
    long values = 0;
    double value;

    for (value = 1.0; value < TOP_US; value *= 1.0003, values++)
        sweep_to(value, &previous, &worst);
    sweep_to(TOP_US, &previous, &worst);
    printf("%ld values from 1 us to 67 s: the worst reads back %.3f %% off (at %.1f us)\n", values + 1,
           worst.error * 100, worst.value);
    ck_assert_msg(worst.error <= WITHIN, "%.1f us reads back %.3f %% off", worst.value, worst.error * 100);
}
END_TEST

/* Within a bucket a value reads back worst at one of the bucket's ends, so the values on both
 * sides of every boundary between buckets, from 1 us to that of the bucket that holds 67 s, give
 * the worst reading there is. */
START_TEST(both_sides_of_every_bucket_boundary_up_to_67_s_read_back_within_0_8_percent)
{
    int bucket, last = latency_bucket(TOP_US);
    struct worst worst = { 0, 0 };

    ck_assert_int_lt(last, LATENCY_BUCKETS - 1);
    for (bucket = 1; bucket <= last + 1; bucket++)
    {
        int octave = (bucket - 1) / LATENCY_SUB_BUCKETS, sub = (bucket - 1) % LATENCY_SUB_BUCKETS;
        double boundary = ldexp(1.0 + (double)sub / LATENCY_SUB_BUCKETS, octave);

        if (bucket <= last)
            note_read_back(&worst, latency_bucket(boundary), boundary);
        if (bucket > 1)
            note_read_back(&worst, latency_bucket(nextafter(boundary, 0.0)), nextafter(boundary, 0.0));
    }
    printf("both sides of the boundaries of buckets 1 to %d: the worst reads back %.4f %% off (at %.1f us)\n",
           last, worst.error * 100, worst.value);
    ck_assert_msg(worst.error <= WITHIN, "%.6f us reads back %.4f %% off", worst.value, worst.error * 100);
}
END_TEST

START_TEST(values_below_1_us_and_above_the_top_have_buckets_of_their_own)
{
    ck_assert_int_eq(latency_bucket(0.0), 0);
    ck_assert_int_eq(latency_bucket(0.99), 0);
    ck_assert_int_eq(latency_bucket(1.0), 1);
    ck_assert_int_eq(latency_bucket(nextafter(ldexp(1.0, LATENCY_OCTAVES), 0.0)), LATENCY_BUCKETS - 2);
    ck_assert_int_eq(latency_bucket(ldexp(1.0, LATENCY_OCTAVES)), LATENCY_BUCKETS - 1);
    ck_assert_int_eq(latency_bucket(1e12), LATENCY_BUCKETS - 1);
}
END_TEST

/* The percentiles of 1,000 latencies spread evenly over 1 ms to 2 s (the host's histogram used
 * to stop at 20 ms and read "19999.5 us" for both). */
START_TEST(percentiles_of_latencies_up_to_2_s)
{
    static struct histogram histogram;
    double p50, p99;
    int i;

    qpc_frequency = 10000000;
    for (i = 1; i <= 1000; i++)
    {
        double us = 1000.0 * pow(2000.0, (i - 1) / 999.0);  /* 1 ms ... 2 s, evenly in log */
        histogram.counts[latency_bucket(us)]++;
    }
    histogram.max_ticks = 2 * qpc_frequency;
    p50 = latency_percentile_us(&histogram, 0.5);
    p99 = latency_percentile_us(&histogram, 0.99);
    printf("p50 %.1f us, p99 %.1f us, max %.1f us\n", p50, p99, latency_max_us(&histogram));
    ck_assert_msg(relative_error(p50, 1000.0 * pow(2000.0, 499 / 999.0)) <= WITHIN, "p50 %.1f us", p50);
    ck_assert_msg(relative_error(p99, 1000.0 * pow(2000.0, 989 / 999.0)) <= WITHIN, "p99 %.1f us", p99);
    ck_assert_msg(relative_error(latency_max_us(&histogram), 2e6) < 1e-9, "max %.1f us", latency_max_us(&histogram));
}
END_TEST

/* Above the top a bucket says only that much: percentiles there read the largest latency seen. */
START_TEST(percentiles_above_the_top_read_the_largest_latency)
{
    static struct histogram histogram;
    int i;

    qpc_frequency = 10000000;
    for (i = 0; i < 10; i++)
        histogram.counts[latency_bucket(66.5e6)]++;
    for (i = 0; i < 90; i++)
        histogram.counts[latency_bucket(100e6)]++;
    histogram.max_ticks = 100 * qpc_frequency;
    ck_assert_msg(relative_error(latency_percentile_us(&histogram, 0.05), 66.5e6) <= WITHIN, "p5 %.1f us",
                  latency_percentile_us(&histogram, 0.05));
    ck_assert_msg(latency_percentile_us(&histogram, 0.5) == 100e6, "p50 %.1f us", latency_percentile_us(&histogram, 0.5));
    ck_assert_msg(latency_percentile_us(&histogram, 0.99) == 100e6, "p99 %.1f us", latency_percentile_us(&histogram, 0.99));
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("latency");
    TCase *histogram = tcase_create("histogram");

    tcase_add_test(histogram, every_value_from_1_us_to_67_s_reads_back_within_0_8_percent);
    tcase_add_test(histogram, both_sides_of_every_bucket_boundary_up_to_67_s_read_back_within_0_8_percent);
    tcase_add_test(histogram, values_below_1_us_and_above_the_top_have_buckets_of_their_own);
    tcase_add_test(histogram, percentiles_of_latencies_up_to_2_s);
    tcase_add_test(histogram, percentiles_above_the_top_read_the_largest_latency);
    suite_add_tcase(suite, histogram);
    return run_suite(suite);
}
