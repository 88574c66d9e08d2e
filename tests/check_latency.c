/* Unit tests of the latency histogram that the host program and the benchmark share
 * (host/workloads.c): log-linear buckets from 1 us to 60 s and more, each value read back within
 * 1 % by its bucket, and percentiles that do not stop at a fixed ceiling. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "case_runner.h"
#include "iobench.h"

static double relative_error(double read, double value)
{
    return fabs(read - value) / value;
}

START_TEST(every_value_from_1_us_to_60_s_reads_back_within_1_percent)
{
    double value, worst = 0, worst_value = 0;
    int bucket, previous = 0;
    long values = 0;

    for (value = 1.0; value <= 60e6; value *= 1.0003)
    {
        bucket = latency_bucket(value);
        ck_assert_int_ge(bucket, previous);
        ck_assert_int_lt(bucket, LATENCY_BUCKETS - 1);  /* not the bucket for "more than the top" */
        if (relative_error(latency_bucket_midpoint_us(bucket), value) > worst)
        {
            worst = relative_error(latency_bucket_midpoint_us(bucket), value);
            worst_value = value;
        }
        previous = bucket;
        values++;
    }
    printf("%ld values from 1 us to 60 s: the worst reads back %.3f %% off (at %.1f us)\n", values, worst * 100,
           worst_value);
    ck_assert_msg(worst <= 0.01, "%.1f us reads back %.2f %% off", worst_value, worst * 100);
}
END_TEST

START_TEST(values_below_1_us_and_above_the_top_have_buckets_of_their_own)
{
    ck_assert_int_eq(latency_bucket(0.0), 0);
    ck_assert_int_eq(latency_bucket(0.99), 0);
    ck_assert_int_eq(latency_bucket(1.0), 1);
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
    ck_assert_msg(relative_error(p50, 1000.0 * pow(2000.0, 499 / 999.0)) <= 0.01, "p50 %.1f us", p50);
    ck_assert_msg(relative_error(p99, 1000.0 * pow(2000.0, 989 / 999.0)) <= 0.01, "p99 %.1f us", p99);
    ck_assert_msg(relative_error(latency_max_us(&histogram), 2e6) < 1e-9, "max %.1f us", latency_max_us(&histogram));
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("latency");
    TCase *histogram = tcase_create("histogram");

    tcase_add_test(histogram, every_value_from_1_us_to_60_s_reads_back_within_1_percent);
    tcase_add_test(histogram, values_below_1_us_and_above_the_top_have_buckets_of_their_own);
    tcase_add_test(histogram, percentiles_of_latencies_up_to_2_s);
    suite_add_tcase(suite, histogram);
    return run_suite(suite);
}
