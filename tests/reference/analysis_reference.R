#!/usr/bin/env Rscript
# Reference fixtures for ildstudy's Table 1, adverse-event and discontinuation analyses (issue 5, items 2, 4, 5).
#
# Run from the repository root:
#     Rscript tests/reference/analysis_reference.R
# Writes the data sets to tests/reference/analysis/data/*.csv and the fixtures
#     tests/reference/analysis/contingency.json   chisq.test (Yates / Pearson), fisher.test, prop.test on 2x2 and r x 2
#     tests/reference/analysis/table1.json        t.test (Welch), wilcox.test, quantile(type = 7), tests and SMDs
#                                                 of categorical variables on data/table1.csv
#     tests/reference/analysis/survival.json      survfit / summary.survfit / survdiff / coxph on data/discontinuation.csv
# Needs the Debian packages r-base-core r-cran-survival r-cran-mass r-cran-jsonlite. The Python suite only reads the
# outputs; it never runs R. The script is deterministic (set.seed before each simulated data set).
#
# Conventions (what ildstudy reproduces):
#   * chisq.test(x, correct = TRUE) is the Yates-corrected test (applied by R to 2x2 tables only);
#     chisq.test(x, correct = FALSE) the Pearson test; fisher.test(x) two-sided.
#   * Risk difference CI: prop.test(x, n, correct = FALSE)$conf.int, i.e. the Wald interval
#     (p1 - p2) +/- z * sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2). Risk ratio CI: Katz log interval, written out below.
#   * wilcox.test(x, y, exact = FALSE, correct = TRUE): normal approximation with tie correction and continuity
#     correction. (R's own default uses the exact distribution when n < 50 and there are no ties; ildstudy always
#     uses the normal approximation, which is what R uses whenever there are ties.)
#   * Table 1 categorical test, as gtsummary's default: chisq.test(correct = FALSE) unless any expected count < 5,
#     then fisher.test. Levels with no patient in either arm are dropped before testing.
#   * SMD: continuous (m1 - m2) / sqrt((s1^2 + s2^2) / 2) (tableone's StdDiff without abs()); categorical: the
#     Yang & Dalton multivariate SMD, as tableone's StdDiffMulti (first level dropped, MASS::ginv of the pooled
#     multinomial covariance). Both are written out here because tableone is not a Debian package.
#   * survfit at its defaults (conf.type = "log", Greenwood variance); summary(fit, times, extend = TRUE);
#     survdiff (rho = 0, log-rank); coxph at its defaults (ties = "efron"); arm is a factor with the reference
#     (MMF) as first level, so the coefficient is armAZA (AZA vs MMF).

suppressPackageStartupMessages({
  library(survival)
  library(MASS, include.only = "ginv")
  library(jsonlite)
})

out_dir  <- file.path("tests", "reference", "analysis")
data_dir <- file.path(out_dir, "data")
if (!dir.exists(file.path("tests", "reference"))) {
  stop("run from the repository root: Rscript tests/reference/analysis_reference.R")
}
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

versions <- list(
  source           = "tests/reference/analysis_reference.R",
  r_version        = R.version.string,
  stats_version    = as.character(packageVersion("stats")),
  survival_version = as.character(packageVersion("survival")),
  MASS_version     = as.character(packageVersion("MASS")),
  jsonlite_version = as.character(packageVersion("jsonlite"))
)

num <- function(x) unname(as.numeric(x))
vec <- function(x) I(unname(x))   # always a JSON array, even of length 1
nan_null <- function(x) if (length(x) == 1 && is.na(x)) NULL else num(x)

write_json_fixture <- function(obj, name) {
  jsonlite::write_json(c(versions, obj), file.path(out_dir, name), auto_unbox = TRUE, digits = NA,
                       pretty = TRUE, null = "null", na = "null")
}

write_data <- function(df, file) {
  utils::write.csv(df, file.path(data_dir, file), row.names = FALSE, na = "")
  file.path("data", file)
}

# ---------------------------------------------------------------------------------------------------------
# 1. Contingency tables. Rows are arms (first row: the compared arm, second: the reference), columns are
#    (event, no event) for 2x2 tables; r x 2 tables have levels as rows and arms as columns.

tests_2x2 <- function(name, events, n, note = "") {
  x <- rbind(c(events[1], n[1] - events[1]), c(events[2], n[2] - events[2]))
  yates <- suppressWarnings(chisq.test(x, correct = TRUE))
  pear  <- suppressWarnings(chisq.test(x, correct = FALSE))
  fis   <- fisher.test(x)
  pt    <- suppressWarnings(prop.test(events, n, correct = FALSE))
  p1 <- events[1] / n[1]; p2 <- events[2] / n[2]
  z <- qnorm(0.975)
  rr <- p1 / p2
  rr_se <- sqrt(1 / events[1] - 1 / n[1] + 1 / events[2] - 1 / n[2])   # Katz: se of log RR
  list(
    name = name, note = note, table = lapply(1:2, function(i) vec(num(x[i, ]))),
    events = vec(num(events)), n = vec(num(n)),
    expected = lapply(1:2, function(i) vec(num(pear$expected[i, ]))),
    yates = list(call = "chisq.test(x, correct = TRUE)", statistic = nan_null(yates$statistic),
                 df = num(yates$parameter), p = nan_null(yates$p.value)),
    chisq = list(call = "chisq.test(x, correct = FALSE)", statistic = nan_null(pear$statistic),
                 df = num(pear$parameter), p = nan_null(pear$p.value)),
    fisher = list(call = "fisher.test(x)", p = num(fis$p.value), odds_ratio = nan_null(fis$estimate),
                  or_ci_low = nan_null(fis$conf.int[1]), or_ci_high = nan_null(fis$conf.int[2])),
    risk_difference = list(call = "prop.test(events, n, correct = FALSE)$conf.int",
                           estimate = num(p1 - p2), ci_low = nan_null(pt$conf.int[1]),
                           ci_high = nan_null(pt$conf.int[2])),
    risk_ratio = list(call = "Katz log interval: exp(log(p1/p2) +/- qnorm(0.975) * sqrt(1/a - 1/n1 + 1/c - 1/n2))",
                      estimate = if (is.finite(rr)) num(rr) else NULL,
                      ci_low = if (is.finite(rr_se) && rr > 0) num(exp(log(rr) - z * rr_se)) else NULL,
                      ci_high = if (is.finite(rr_se) && rr > 0) num(exp(log(rr) + z * rr_se)) else NULL)
  )
}

tests_rx2 <- function(name, x, note = "") {
  x <- as.matrix(x)
  pear <- suppressWarnings(chisq.test(x, correct = FALSE))
  fis  <- fisher.test(x)
  list(name = name, note = note, table = lapply(seq_len(nrow(x)), function(i) vec(num(x[i, ]))),
       expected = lapply(seq_len(nrow(x)), function(i) vec(num(pear$expected[i, ]))),
       chisq = list(call = "chisq.test(x, correct = FALSE)", statistic = num(pear$statistic),
                    df = num(pear$parameter), p = num(pear$p.value)),
       fisher = list(call = "fisher.test(x)", p = num(fis$p.value)))
}

two_by_two <- list(
  tests_2x2("huapaya2019_ae", c(22, 6), c(66, 44),
            "adverse events AZA 22/66 vs MMF 6/44 (Huapaya et al. 2019): Yates p = 0.036, Pearson 0.020, Fisher 0.025"),
  tests_2x2("small_expected", c(3, 9), c(15, 15), "expected counts < 5"),
  tests_2x2("zero_in_arm", c(0, 5), c(20, 20), "no event in the compared arm"),
  tests_2x2("large", c(50, 30), c(100, 100), ""),
  tests_2x2("all_events_one_arm", c(12, 7), c(12, 20), "every patient of the compared arm has an event"),
  tests_2x2("equal_margins", c(5, 5), c(10, 10), "identical proportions; Fisher p = 1"),
  tests_2x2("yates_clamp", c(10, 10), c(21, 19), "|O - E| < 0.5: the Yates correction is clamped")
)

r_by_2 <- list(
  tests_rx2("smoking_3x2", rbind(c(20, 12), c(9, 14), c(4, 7))),
  tests_rx2("sparse_4x2", rbind(c(1, 6), c(0, 3), c(7, 2), c(12, 10)), "Fisher r x c"),
  tests_rx2("sparse_5x2", rbind(c(2, 0), c(5, 1), c(3, 4), c(10, 3), c(4, 9)), "Fisher r x c"),
  tests_rx2("balanced_3x2", rbind(c(4, 4), c(4, 4), c(4, 4)), "Fisher p = 1"),
  tests_rx2("diagnosis_6x2", rbind(c(9, 6), c(4, 5), c(12, 3), c(2, 4), c(1, 3), c(5, 2)), "Fisher r x c, 6 rows")
)

write_json_fixture(list(two_by_two = two_by_two, r_by_2 = r_by_2), "contingency.json")

# ---------------------------------------------------------------------------------------------------------
# 2. Table 1 on a small simulated cohort (data/table1.csv). Arms AZA (first) and MMF.
set.seed(20191105)
n_aza <- 34; n_mmf <- 26; n <- n_aza + n_mmf
arm <- c(rep("AZA", n_aza), rep("MMF", n_mmf))
t1 <- data.frame(
  patient_id = sprintf("T%03d", seq_len(n)),
  arm = arm,
  age = round(rnorm(n, ifelse(arm == "AZA", 52, 48), 11), 1),
  fvc_pct_pred = round(rnorm(n, ifelse(arm == "AZA", 56, 64), 15)),            # integers: ties
  dlco_pct_pred = round(rnorm(n, ifelse(arm == "AZA", 43, 53), 14), 1),
  prednisone_mg = 2.5 * round(rexp(n, 1 / ifelse(arm == "AZA", 10, 8))),       # multiples of 2.5: many ties
  sex = ifelse(runif(n) < 0.68, "F", "M"),
  antisynthetase = runif(n) < ifelse(arm == "AZA", 0.7, 0.55),
  smoking = sample(c("never", "former", "current"), n, replace = TRUE, prob = c(0.65, 0.25, 0.10)),
  diagnosis = sample(c("DM", "PM", "ASyS", "IMNM", "CADM", "overlap"), n, replace = TRUE,
                     prob = c(0.25, 0.15, 0.35, 0.05, 0.1, 0.1)),
  height_cm = NA_real_,                                                         # all missing
  ild = TRUE,                                                                   # a single level
  stringsAsFactors = FALSE)
t1$dlco_pct_pred[c(3, 17, 40, 41, 58)] <- NA      # missing DLCO in both arms
t1$smoking[c(5, 36)] <- NA
t1$prednisone_mg[c(60)] <- NA
t1_file <- write_data(t1, "table1.csv")

arms <- c("AZA", "MMF")
quant7 <- function(v) num(quantile(v, c(0.25, 0.5, 0.75), type = 7, na.rm = TRUE))

continuous <- function(var) {
  x <- t1[[var]][t1$arm == "AZA"]; y <- t1[[var]][t1$arm == "MMF"]
  by_arm <- lapply(list(AZA = x, MMF = y), function(v) {
    q <- quant7(v)
    list(n = sum(!is.na(v)), missing = sum(is.na(v)), mean = num(mean(v, na.rm = TRUE)),
         sd = num(sd(v, na.rm = TRUE)), median = q[2], q1 = q[1], q3 = q[3],
         # as printed, from R's full-precision values (the JSON numbers have 15 significant digits, which can
         # move a value that lies on a rounding boundary, e.g. 42.349999999999994 -> 42.35)
         mean_sd_text = sprintf("%.1f (%.1f)", mean(v, na.rm = TRUE), sd(v, na.rm = TRUE)),
         median_iqr_text = sprintf("%.1f [%.1f, %.1f]", q[2], q[1], q[3]))
  })
  tt <- t.test(x, y)                                           # Welch (var.equal = FALSE is the default)
  wt <- wilcox.test(x, y, exact = FALSE, correct = TRUE)
  m <- c(mean(x, na.rm = TRUE), mean(y, na.rm = TRUE)); s2 <- c(var(x, na.rm = TRUE), var(y, na.rm = TRUE))
  list(variable = var, by_arm = by_arm,
       welch = list(call = "t.test(x, y)", statistic = num(tt$statistic), df = num(tt$parameter), p = num(tt$p.value)),
       wilcoxon = list(call = "wilcox.test(x, y, exact = FALSE, correct = TRUE)", statistic = num(wt$statistic),
                       p = num(wt$p.value)),
       smd = num((m[1] - m[2]) / sqrt(sum(s2) / 2)))
}

# Yang & Dalton SMD, as tableone::StdDiffMulti for two strata
smd_multi <- function(tab) {                       # tab: arms x levels counts
  props <- prop.table(tab, margin = 1)
  if (ncol(props) > 1) props <- props[, -1, drop = FALSE]
  mv <- function(p) { s <- -outer(p, p); diag(s) <- p * (1 - p); s }
  tc <- props[1, ] - props[2, ]
  S <- (mv(props[1, ]) + mv(props[2, ])) / 2
  if (all(S == 0)) return(if (all(tc == 0)) 0 else NaN)
  num(sqrt(drop(t(tc) %*% MASS::ginv(S) %*% tc)))
}

categorical <- function(var, levels = NULL, positive = NULL) {
  v <- t1[[var]]
  if (is.logical(v)) v <- ifelse(v, "TRUE", "FALSE")
  lev <- if (is.null(levels)) sort(unique(v[!is.na(v)])) else levels
  f <- factor(v, levels = lev)
  tab <- table(factor(t1$arm, levels = arms), f)                  # arms x levels
  counts <- lapply(arms, function(a) setNames(as.list(num(tab[a, ])), lev))
  names(counts) <- arms
  used <- tab[, colSums(tab) > 0, drop = FALSE]
  out <- list(variable = var, levels = vec(lev), counts = counts,
              missing = setNames(as.list(num(tapply(is.na(v), factor(t1$arm, levels = arms), sum))), arms),
              smd = nan_null(smd_multi(tab)))
  if (ncol(used) >= 2) {
    x <- t(used)                                                    # levels x arms, as gtsummary tabulates
    pear <- suppressWarnings(chisq.test(x, correct = FALSE))
    fis <- fisher.test(x)
    out$chisq <- list(call = "chisq.test(table(level, arm), correct = FALSE)", statistic = num(pear$statistic),
                      df = num(pear$parameter), p = num(pear$p.value))
    out$fisher <- list(call = "fisher.test(table(level, arm))", p = num(fis$p.value))
    out$min_expected <- num(min(pear$expected))
    out$test <- if (min(pear$expected) < 5) "Fisher's exact" else "Chi-squared"
    out$p <- if (min(pear$expected) < 5) num(fis$p.value) else num(pear$p.value)
  } else {
    out$test <- "—"
    out$p <- NULL
  }
  if (!is.null(positive)) {
    p <- c(mean(v[t1$arm == "AZA"] == positive, na.rm = TRUE), mean(v[t1$arm == "MMF"] == positive, na.rm = TRUE))
    out$positive <- positive
    den <- sqrt((p[1] * (1 - p[1]) + p[2] * (1 - p[2])) / 2)
    out$smd_binary_signed <- if (den > 0) num((p[1] - p[2]) / den) else if (p[1] == p[2]) 0 else NULL
  }
  out
}

table1_fx <- list(
  data = t1_file, arms = vec(arms),
  n = list(AZA = n_aza, MMF = n_mmf),
  continuous = lapply(c("age", "fvc_pct_pred", "dlco_pct_pred", "prednisone_mg"), continuous),
  categorical = list(
    categorical("sex", positive = "F"),
    categorical("antisynthetase", levels = c("FALSE", "TRUE"), positive = "TRUE"),
    categorical("smoking", levels = c("never", "former", "current")),
    categorical("diagnosis", levels = c("DM", "PM", "ASyS", "IMNM", "CADM", "overlap")),
    categorical("ild", levels = c("FALSE", "TRUE"), positive = "TRUE")),
  all_missing = list(variable = "height_cm",
                     missing = list(AZA = sum(is.na(t1$height_cm[t1$arm == "AZA"])),
                                    MMF = sum(is.na(t1$height_cm[t1$arm == "MMF"]))))
)
write_json_fixture(table1_fx, "table1.json")

# ---------------------------------------------------------------------------------------------------------
# 3. Discontinuation: time from index to stopping the arm drug, in whole months (ties), censored at a random
#    administrative time or 60 months. Arms AZA / MMF; MMF is the reference.
set.seed(20181231)
n_aza <- 48; n_mmf <- 36; n <- n_aza + n_mmf
arm <- c(rep("AZA", n_aza), rep("MMF", n_mmf))
stop_t <- rexp(n, ifelse(arm == "AZA", 1 / 30, 1 / 55))
cens_t <- pmin(runif(n, 6, 90), 60)
months <- pmax(ceiling(pmin(stop_t, cens_t)), 1)            # whole months >= 1
event <- stop_t <= cens_t
reason <- ifelse(event, sample(c("adverse_event", "inefficacy", "remission", "other"), n, replace = TRUE,
                               prob = c(0.45, 0.3, 0.15, 0.1)), "")
reason[event & arm == "MMF" & seq_len(n) %% 3 == 0] <- "inefficacy"
surv_df <- data.frame(patient_id = sprintf("D%03d", seq_len(n)), arm = arm, months = months, event = event,
                      reason = reason, stringsAsFactors = FALSE)
surv_file <- write_data(surv_df, "discontinuation.csv")
surv_df$arm <- factor(surv_df$arm, levels = c("MMF", "AZA"))
# the report uses 0, 12, ..., 60; 6 (between event times) and 72 (after the last follow-up) test extend = TRUE
report_times <- c(0, 6, 12, 24, 36, 48, 60, 72)

km_rows <- function(fit) {
  s <- summary(fit, censored = TRUE)    # every distinct time, events and censorings
  strata <- sub("^arm=", "", as.character(s$strata))
  # survfit's own fields: std.err is the SE of the cumulative hazard (= SE of log S), lower/upper per conf.type
  lapply(seq_along(s$time), function(i) list(
    arm = strata[i], time = num(s$time[i]), n_risk = num(s$n.risk[i]), n_event = num(s$n.event[i]),
    n_censor = num(s$n.censor[i]), survival = num(s$surv[i]), std_err_surv = num(s$std.err[i]),
    ci_low = nan_null(s$lower[i]), ci_high = nan_null(s$upper[i])))
}

at_times <- function(fit) {
  s <- summary(fit, times = report_times, extend = TRUE)
  strata <- sub("^arm=", "", as.character(s$strata))
  lapply(seq_along(s$time), function(i) list(
    arm = strata[i], time = num(s$time[i]), n_risk = num(s$n.risk[i]), n_event = num(s$n.event[i]),
    survival = num(s$surv[i]), std_err_surv = nan_null(s$std.err[i]),
    ci_low = nan_null(s$lower[i]), ci_high = nan_null(s$upper[i])))
}

endpoint <- function(name, ev, d = surv_df) {
  d$status <- as.integer(ev)
  fit_log    <- survfit(Surv(months, status) ~ arm, data = d)                   # conf.type = "log" (default)
  fit_loglog <- survfit(Surv(months, status) ~ arm, data = d, conf.type = "log-log")
  fit_plain  <- survfit(Surv(months, status) ~ arm, data = d, conf.type = "plain")
  sd <- survdiff(Surv(months, status) ~ arm, data = d)
  cx <- coxph(Surv(months, status) ~ arm, data = d)                              # ties = "efron"
  sc <- summary(cx)
  list(
    endpoint = name,
    events = setNames(as.list(num(tapply(d$status, d$arm, sum))), levels(d$arm)),
    km = list(log = km_rows(fit_log), `log-log` = km_rows(fit_loglog), plain = km_rows(fit_plain)),
    at_times = list(call = "summary(survfit(...), times = report_times, extend = TRUE)",
                    log = at_times(fit_log), `log-log` = at_times(fit_loglog), plain = at_times(fit_plain)),
    # print(fit) / summary(fit)$table: median and its CI (survmean's rule, conf.type "log")
    median = lapply(setNames(seq_len(nrow(summary(fit_log)$table)), sub("^arm=", "", rownames(summary(fit_log)$table))),
                    function(i) { tb <- summary(fit_log)$table
                      list(median = nan_null(tb[i, "median"]), ci_low = nan_null(tb[i, "0.95LCL"]),
                           ci_high = nan_null(tb[i, "0.95UCL"])) }),
    logrank = list(call = "survdiff(Surv(months, status) ~ arm)", chisq = num(sd$chisq),
                   df = length(sd$n) - 1, p = num(pchisq(sd$chisq, length(sd$n) - 1, lower.tail = FALSE)),
                   observed = setNames(as.list(num(sd$obs)), levels(d$arm)),
                   expected = setNames(as.list(num(sd$exp)), levels(d$arm))),
    cox = list(call = "coxph(Surv(months, status) ~ arm)  # ties = 'efron'", term = names(coef(cx)),
               coef = num(coef(cx)), se = num(sqrt(diag(vcov(cx)))), hr = num(exp(coef(cx))),
               ci_low = num(sc$conf.int[1, "lower .95"]), ci_high = num(sc$conf.int[1, "upper .95"]),
               z = num(sc$coefficients[1, "z"]), p = num(sc$coefficients[1, "Pr(>|z|)"]),
               loglik = vec(num(cx$loglik)), lr_test = num(sc$logtest["test"]), lr_p = num(sc$logtest["pvalue"]),
               score_test = num(sc$sctest["test"]), score_p = num(sc$sctest["pvalue"]), iter = num(cx$iter))
  )
}

survival_fx <- list(
  data = surv_file, arms = vec(c("AZA", "MMF")), reference_arm = "MMF", report_times = vec(report_times),
  endpoints = list(
    endpoint("any_reason", surv_df$event),
    endpoint("adverse_event", surv_df$event & surv_df$reason == "adverse_event"))
)
# Edge cases: in arm AZA every patient stops (S reaches 0 at the last time); in arm MMF the curve is flat at
# exactly 0.5 after month 2 until the last censoring at month 4 (median = (2 + 4) / 2 = 3 in R).
edge_df <- data.frame(patient_id = sprintf("E%02d", 1:10), arm = c(rep("AZA", 6), rep("MMF", 4)),
                      months = c(1, 2, 2, 3, 4, 5, 1, 2, 3, 4), event = c(TRUE, TRUE, TRUE, FALSE, TRUE, TRUE,
                      TRUE, TRUE, FALSE, FALSE), reason = "", stringsAsFactors = FALSE)
edge_file <- write_data(edge_df, "km_edge.csv")
edge_df$arm <- factor(edge_df$arm, levels = c("MMF", "AZA"))
survival_fx$edge <- c(list(data = edge_file), endpoint("edge", edge_df$event, edge_df))
write_json_fixture(survival_fx, "survival.json")

cat("wrote", file.path(out_dir, c("contingency.json", "table1.json", "survival.json")), sep = "\n")
