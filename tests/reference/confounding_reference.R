#!/usr/bin/env Rscript
# Reference fixtures for ildstudy's confounding analyses (issue 12): propensity score, weights, nearest-neighbour
# matching, balance, weighted / matched outcome models, E-values (ildstudy.analysis.confounding).
#
# Run from the repository root:
#     Rscript tests/reference/confounding_reference.R
# Writes tests/reference/confounding/data/{patients,measurements}.csv (a simulated cohort with confounding by
#     indication; set.seed below) and tests/reference/confounding/reference.json:
#   ps        glm(arm ~ ..., family = binomial), epsilon = 1e-14 (the maximum itself) and the default control
#   weights   IPTW ATE / ATT (stabilised or not), overlap, trimming, truncation -- in base R from the formulas
#             (WeightIt is not installed; the formulas are WeightIt's, see ildstudy/analysis/confounding/weights.py)
#   matching  MatchIt::matchit(method = "nearest", distance = "glm", link = "linear.logit", caliper = 0.2,
#             ratio =, replace =): match.matrix, weights, subclass, and summary()'s Std. Mean Diff. / Var. Ratio
#   balance   cobalt's bal.tab definitions in base R (cobalt is not installed): SMD with the unweighted pooled SD
#             (ATE, ATO) or treated SD (ATT), binary variance p(1 - p), weighted variance ratio, Kish ESS
#   outcomes  lm(y ~ months * arm + covariates, weights = w) + sandwich::vcovCL(cluster = ~ id | ~ subclass,
#             type = "HC1"); lm(ae ~ arm, weights = w) + vcovCL; survfit(weights = w); coxph(weights = w,
#             robust = TRUE, cluster = ...)
#   evalues   VanderWeele & Ding (2017) formulas (EValue is not installed), evalues.MD's exp(0.91 d) conversion
# Needs r-base-core r-cran-matchit r-cran-sandwich r-cran-survival r-cran-survey r-cran-jsonlite. The Python suite
# only reads the outputs; it never runs R.

suppressPackageStartupMessages({
  library(MatchIt)
  library(sandwich)
  library(survival)
  library(survey)
  library(jsonlite)
})

if (!dir.exists(file.path("tests", "reference"))) {
  stop("run from the repository root: Rscript tests/reference/confounding_reference.R")
}
out_dir  <- file.path("tests", "reference", "confounding")
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

# ---- a simulated cohort: lower baseline FVC / DLCO raise the chance of AZA ------------------------------------
set.seed(20190612)
n <- 300
female <- rbinom(n, 1, 0.6)
age <- round(rnorm(n, 52, 11), 1)
antisynthetase <- rbinom(n, 1, 0.55)
ever_smoker <- rbinom(n, 1, 0.35)
diagnosis <- sample(c("ASyS", "DM", "PM", "overlap"), n, replace = TRUE, prob = c(0.4, 0.3, 0.15, 0.15))
b0 <- rnorm(n, 0, 12)
baseline_fvc_pct_pred <- round(68 + b0 + rnorm(n, 0, 4), 1)
baseline_dlco_pct_pred <- round(50 + 0.8 * b0 + rnorm(n, 0, 10), 1)
lp_true <- -0.4 - 0.06 * (baseline_fvc_pct_pred - 68) - 0.03 * (baseline_dlco_pct_pred - 50) + 0.3 * antisynthetase
treat <- rbinom(n, 1, plogis(lp_true))
arm <- ifelse(treat == 1, "AZA", "MMF")
# adverse events and time to discontinuation (times on a 0.5-month grid: ties for Efron)
ae <- rbinom(n, 1, plogis(-1.3 + 0.8 * treat - 0.02 * (baseline_fvc_pct_pred - 68)))
t_event <- rexp(n, 1 / (40 * exp(-0.4 * treat)))
t_cens <- runif(n, 6, 60)
time <- pmax(0.5, round(2 * pmin(t_event, t_cens)) / 2)
status <- as.integer(t_event <= t_cens)
patients <- data.frame(id = sprintf("P%03d", seq_len(n)), arm, treat, female, age, antisynthetase, ever_smoker,
                       diagnosis, baseline_fvc_pct_pred, baseline_dlco_pct_pred, ae, time, status)
# measurements: baseline and 2-6 follow-up visits; slope -0.05/month, AZA +0.04/month (true effect at 36: 1.44)
rows <- lapply(seq_len(n), function(i) {
  k <- sample(2:6, 1)
  m <- c(0, sort(round(runif(k, 2, 60), 2)))
  y <- 68 + b0[i] + (-0.05 + 0.04 * treat[i]) * m - 0.1 * (age[i] - 52) + rnorm(length(m), 0, 4)
  y[1] <- baseline_fvc_pct_pred[i]
  data.frame(id = patients$id[i], months = m, fvc_pct_pred = round(y, 1))
})
measurements <- do.call(rbind, rows)
write.csv(patients, file.path(data_dir, "patients.csv"), row.names = FALSE)
write.csv(measurements, file.path(data_dir, "measurements.csv"), row.names = FALSE)

patients$diagnosis <- factor(patients$diagnosis, levels = c("ASyS", "DM", "PM", "overlap"))
patients$armf <- factor(patients$arm, levels = c("MMF", "AZA"))
ps_formula <- treat ~ female + age + antisynthetase + ever_smoker + diagnosis + baseline_fvc_pct_pred +
  baseline_dlco_pct_pred

# ---- propensity score -----------------------------------------------------------------------------------------
glm_tight <- glm(ps_formula, family = binomial, data = patients, control = glm.control(epsilon = 1e-14, maxit = 100))
glm_default <- glm(ps_formula, family = binomial, data = patients)
e <- fitted(glm_tight)
lp <- predict(glm_tight, type = "link")
coef_table <- function(fit) {
  s <- summary(fit)$coefficients
  list(term = rownames(s), estimate = unname(s[, 1]), se = unname(s[, 2]))
}

# ---- weights (WeightIt's formulas in base R) --------------------------------------------------------------------
p1 <- mean(treat)
t1 <- treat == 1
w_ate <- ifelse(t1, 1 / e, 1 / (1 - e))
w_ate_s <- w_ate * ifelse(t1, p1, 1 - p1)
w_att <- ifelse(t1, 1, e / (1 - e))
w_att_s <- w_att * ifelse(t1, 1, (1 - p1) / p1)
w_ato <- ifelse(t1, 1 - e, e)
keep <- e >= 0.1 & e <= 0.9                                      # trimming at a = 0.1
pk <- mean(treat[keep])
w_ate_trim <- ifelse(keep, ifelse(t1, pk / e, (1 - pk) / (1 - e)), 0)
cap <- quantile(w_ate_s, 0.95, type = 7)                           # truncation at the 95th percentile
w_ate_trunc <- pmin(w_ate_s, cap)
cap_att <- quantile(w_att_s[!t1], 0.95, type = 7)
w_att_trunc <- ifelse(t1, 1, pmin(w_att_s, cap_att))
weights <- list(iptw_ate = w_ate, iptw_ate_stabilised = w_ate_s, iptw_att = w_att, iptw_att_stabilised = w_att_s,
                overlap = w_ato, iptw_ate_trim_0.1 = w_ate_trim, iptw_ate_truncate_0.95 = w_ate_trunc,
                iptw_att_truncate_0.95 = w_att_trunc, cap_ate_0.95 = unname(cap), cap_att_0.95 = unname(cap_att))

# ---- balance (cobalt's bal.tab definitions, base R) -------------------------------------------------------------
X <- model.matrix(ps_formula, patients)[, -1]
wvar <- function(x, w) {
  if (all(x %in% c(0, 1))) { m <- sum(w * x) / sum(w); return(m * (1 - m)) }
  m <- sum(w * x) / sum(w)
  sum(w * (x - m)^2) * sum(w) / (sum(w)^2 - sum(w^2))
}
balance <- function(w, estimand) {
  out <- lapply(colnames(X), function(v) {
    x <- X[, v]
    one <- rep(1, n)
    sd <- if (estimand == "ATT") sqrt(wvar(x[t1], one[t1])) else sqrt((wvar(x[t1], one[t1]) + wvar(x[!t1], one[!t1])) / 2)
    smd <- function(ww) (sum(ww[t1] * x[t1]) / sum(ww[t1]) - sum(ww[!t1] * x[!t1]) / sum(ww[!t1])) / sd
    vr <- function(ww) if (all(x %in% c(0, 1))) NA else wvar(x[t1 & ww > 0], ww[t1 & ww > 0]) / wvar(x[!t1 & ww > 0], ww[!t1 & ww > 0])
    list(covariate = v, smd_before = smd(one), smd_after = smd(w), variance_ratio_before = vr(one),
         variance_ratio_after = vr(w))
  })
  ess <- function(ww) sum(ww)^2 / sum(ww^2)
  list(rows = out, ess_treated = ess(w[t1]), ess_reference = ess(w[!t1]))
}

# ---- matching ---------------------------------------------------------------------------------------------------
# MatchIt 4.5.1 (the Debian package) compares distances with C's integer abs() (fixed in MatchIt 4.5.4, "calipers
# would not work properly on some systems", #163: abs -> std::abs in nn_matchC_vec.cpp), so the caliper and the
# left/right choice see |difference| truncated to an integer. ildstudy follows the fixed algorithm; to get its
# numbers from 4.5.1, the fixtures pass the glm linear predictor times 1e6 as a numeric `distance` (the caliper,
# 0.2 SD, scales with it; truncation then drops only differences below 1e-6). `legacy_4.5.1` records what the
# installed matchit(distance = "glm", link = "linear.logit") itself returns, to document the difference.
SCALE <- 1e6
lp_default <- predict(glm_default, type = "link")
matching <- list()
for (s in list(list(ratio = 1, replace = FALSE), list(ratio = 2, replace = FALSE), list(ratio = 1, replace = TRUE),
               list(ratio = 3, replace = TRUE))) {
  m_legacy <- matchit(ps_formula, data = patients, method = "nearest", distance = "glm", link = "linear.logit",
                      caliper = 0.2, ratio = s$ratio, replace = s$replace)
  m <- matchit(ps_formula, data = patients, method = "nearest", distance = SCALE * lp_default,
               caliper = 0.2, ratio = s$ratio, replace = s$replace)
  mm <- m$match.matrix
  mm_idx <- matrix(match(mm, rownames(patients)), nrow = nrow(mm))
  sm <- summary(m, standardize = TRUE)$sum.matched
  name <- sprintf("ratio%d_%s", s$ratio, if (s$replace) "replace" else "noreplace")
  matching[[name]] <- list(
    ratio = s$ratio, replace = s$replace, caliper_sd = 0.2, caliper = unname(m$caliper) / SCALE,
    distance = unname(m$distance) / SCALE, legacy_n_matched = unname(summary(m_legacy)$nn["Matched", ]),
    match_matrix = lapply(seq_len(nrow(mm_idx)), function(i) I(mm_idx[i, ] - 1)),   # 0-based rows, NA = none
    weights = unname(m$weights),
    subclass = if (is.null(m$subclass)) NULL else as.integer(as.character(m$subclass)),
    summary_matched = list(covariate = rownames(sm), std_mean_diff = unname(sm[, "Std. Mean Diff."]),
                           var_ratio = unname(sm[, "Var. Ratio"])),
    n_matched = unname(summary(m)$nn["Matched", ]))
}
m_main <- matchit(ps_formula, data = patients, method = "nearest", distance = SCALE * lp_default,
                  caliper = 0.2, ratio = 1, replace = FALSE)
w_match <- m_main$weights
subclass <- as.character(m_main$subclass)

# ---- outcome analyses -------------------------------------------------------------------------------------------
long <- merge(measurements, patients[, c("id", "armf", "female", "age", "antisynthetase", "ever_smoker")], by = "id")
long <- long[order(long$id, long$months), ]
traj <- function(w_by_id, cluster_by_id) {
  d <- long
  d$w <- w_by_id[match(d$id, patients$id)]
  d$cl <- cluster_by_id[match(d$id, patients$id)]
  d <- d[d$w > 0, ]
  fit <- lm(fvc_pct_pred ~ months * armf + female + age + antisynthetase + ever_smoker, data = d, weights = w)
  V <- vcovCL(fit, cluster = ~ cl, type = "HC1")
  L <- setNames(rep(0, length(coef(fit))), names(coef(fit)))
  L["armfAZA"] <- 1; L["months:armfAZA"] <- 36
  est <- sum(L * coef(fit)); se <- sqrt(drop(t(L) %*% V %*% L))
  list(term = sub("armf", "arm", names(coef(fit))), estimate = unname(coef(fit)), se = unname(sqrt(diag(V))),
       n_obs = nrow(d), n_clusters = length(unique(d$cl)), contrast_36 = est, contrast_36_se = se,
       residual_sd = summary(fit)$sigma)
}
ae_fit <- function(w, cluster) {
  d <- patients; d$w <- w; d$cl <- cluster; d <- d[d$w > 0, ]
  fit <- lm(ae ~ treat, data = d, weights = w)
  V <- vcovCL(fit, cluster = ~ cl, type = "HC1")
  p0 <- unname(coef(fit)[1]); p1r <- p0 + unname(coef(fit)[2])
  g <- c(1 / p1r - 1 / p0, 1 / p1r)
  des <- svydesign(ids = ~ cl, weights = ~ w, data = d)
  sv <- svyglm(ae ~ treat, design = des)
  list(risk_treated = p1r, risk_reference = p0, rd = unname(coef(fit)[2]), rd_se = sqrt(V[2, 2]),
       rr = p1r / p0, rr_se_log = sqrt(drop(t(g) %*% V %*% g)), svyglm_rd_se = unname(sqrt(vcov(sv)[2, 2])),
       n = nrow(d))
}
km_fit <- function(w) {
  d <- patients; d$w <- w; d <- d[d$w > 0, ]
  f <- survfit(Surv(time, status) ~ armf, data = d, weights = w)
  s <- summary(f, times = c(12, 24, 36), extend = TRUE)
  list(strata = as.character(s$strata), time = s$time, surv = s$surv)
}
cox_fit <- function(w, cluster) {
  d <- patients; d$w <- w; d$cl <- cluster; d <- d[d$w > 0, ]
  fit <- coxph(Surv(time, status) ~ treat, data = d, weights = w, robust = TRUE, cluster = cl,
               control = coxph.control(eps = 1e-12, toler.chol = 1e-13, iter.max = 50))
  list(coef = unname(coef(fit)), robust_se = unname(sqrt(fit$var[1, 1])), n = fit$n, events = fit$nevent)
}
designs <- list(crude = list(w = rep(1, n), cl = patients$id), iptw_ate = list(w = w_ate_s, cl = patients$id),
                iptw_att = list(w = w_att_s, cl = patients$id), overlap = list(w = w_ato, cl = patients$id),
                matching = list(w = w_match, cl = ifelse(is.na(subclass), patients$id, subclass)))
outcomes <- lapply(designs, function(s) list(trajectory = traj(s$w, s$cl), adverse_events = ae_fit(s$w, s$cl),
                                             km = km_fit(s$w), cox = cox_fit(s$w, s$cl)))
# E-values (VanderWeele & Ding 2017; EValue::evalues.RR / evalues.MD formulas)
ev_rr <- function(rr) { r <- ifelse(rr < 1, 1 / rr, rr); r + sqrt(r * (r - 1)) }
ev_md <- function(est, se, sd) { d <- est / sd; s <- se / sd
  c(rr = exp(0.91 * d), lo = exp(0.91 * d - 1.78 * s), hi = exp(0.91 * d + 1.78 * s)) }
evalues <- list(rr = list(input = c(3.9, 0.8, 1.0, 1.3), evalue = ev_rr(c(3.9, 0.8, 1.0, 1.3))),
                md = list(estimate = -4.2, se = 1.9, sd = 11.0, converted = as.list(ev_md(-4.2, 1.9, 11.0)),
                          evalue = ev_rr(ev_md(-4.2, 1.9, 11.0)[["rr"]]),
                          evalue_ci = ev_rr(ev_md(-4.2, 1.9, 11.0)[["hi"]])))

versions <- list(source = "tests/reference/confounding_reference.R", r_version = R.version.string,
                 MatchIt_version = as.character(packageVersion("MatchIt")),
                 sandwich_version = as.character(packageVersion("sandwich")),
                 survival_version = as.character(packageVersion("survival")),
                 survey_version = as.character(packageVersion("survey")))
out <- list(versions = versions, n = n, n_treated = sum(t1),
            ps = list(tight = coef_table(glm_tight), default = coef_table(glm_default), ps = unname(e),
                      linear_predictor = unname(lp)),
            weights = weights,
            balance = list(iptw_ate = balance(w_ate_s, "ATE"), iptw_att = balance(w_att_s, "ATT"),
                           overlap = balance(w_ato, "ATO"), matching = balance(w_match, "ATT")),
            matching = matching, outcomes = outcomes, evalues = evalues)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "reference.json"))
cat("wrote", file.path(out_dir, "reference.json"), "\n")
