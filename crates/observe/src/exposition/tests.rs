//! The exposition formats' rules, and hostile input.

use expect_test::expect;

use super::*;

#[test]
fn samples_labels_types_and_special_values_are_read() {
    let text = r#"
# HELP lab_db_pool_in_use Connections in use.
# TYPE lab_db_pool_in_use gauge
lab_db_pool_in_use 7
# TYPE http_requests counter
http_requests_total{route="/login",code="200"} 1027 1395066363000
http_requests_total{route="a=b, \"c\"\\d\ne",code="500"} 3
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 5
latency_seconds_bucket{le="+Inf"} 9
latency_seconds_sum 1.5e0
latency_seconds_count 9
queue_depth NaN
temperature -Inf # {trace_id="x"} 1
# EOF
"#;
    let e = parse(text);
    assert_eq!(e.bad_lines, 0, "{:?}", e.first_bad);
    assert_eq!(e.samples.len(), 9);
    assert_eq!(e.kind_of("lab_db_pool_in_use"), Kind::Gauge);
    assert_eq!(e.kind_of("http_requests_total"), Kind::Counter);
    assert_eq!(e.kind_of("latency_seconds_bucket"), Kind::Histogram);
    assert_eq!(e.kind_of("queue_depth"), Kind::Untyped);
    // An `=`, a comma and escapes inside a label value are the value's.
    assert_eq!(e.samples[2].label("route"), Some("a=b, \"c\"\\d\ne"));
    assert_eq!(e.samples[1].value, 1027.0);
    assert_eq!(e.samples[4].value, 9.0);
    assert_eq!(e.samples[4].label("le"), Some("+Inf"));
    assert!(e.samples[7].value.is_nan());
    assert_eq!(e.samples[8].value, f64::NEG_INFINITY);
}

#[test]
fn bad_lines_are_counted_and_skipped_never_fatal() {
    let text =
        "ok 1\n9bad 1\nno_value\nx{l=\"open} 1\nx{l=unquoted} 1\nx 1two\n# TYPE\nstill_ok 2\n";
    let e = parse(text);
    let names: Vec<&str> = e.samples.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ok", "still_ok"]);
    assert_eq!(e.bad_lines, 6);
    expect![[r#"Some((2, "not a metric name"))"#]].assert_eq(&format!("{:?}", e.first_bad));
}
