#!/usr/bin/env Rscript
# Reference fixtures for ildstudy's safety and discontinuation numerics (issue 15, item 5):
# incidence rates and rate ratios (ildstudy.analysis.rates) and competing risks (ildstudy.analysis.competing_risks).
#
# Run from the repository root:
#     Rscript tests/reference/safety_reference.R
# Writes the data sets tests/reference/analysis/data/{ae_counts,ae_counts_zero,competing_risks}.csv and
#     tests/reference/analysis/rates.json            poisson.test (one and two samples), glm(family = poisson) with
#                                                    offset(log(person_years)), MASS::glm.nb with the same offset
#     tests/reference/analysis/competing_risks.json  survfit(Surv(time, factor(status)) ~ arm) (Aalen-Johansen,
#                                                    infinitesimal-jackknife SE, conf.type "log"), cmprsk::cuminc
#                                                    (estimate, variance, Gray's test), cause-specific coxph,
#                                                    survival::finegray + weighted coxph, cmprsk::crr
# Needs the Debian packages r-base-core r-cran-survival r-cran-mass r-cran-cmprsk r-cran-jsonlite. The Python suite
# only reads the outputs; it never runs R. Deterministic: set.seed() before each simulated data set.
#
# Conventions: arms AZA (compared) and MMF (reference); arm is a factor with MMF as first level, so R's coefficient
# is armAZA. glm / glm.nb are run twice: at their default control (what a user sees) and with epsilon = 1e-14 (the
# maximum itself, which ildstudy iterates to); the tests compare with both, at different tolerances.

suppressPackageStartupMessages({
  library(survival)
  library(MASS)
  library(cmprsk)
  library(jsonlite)
})

out_dir  <- file.path("tests", "reference", "analysis")
data_dir <- file.path(out_dir, "data")
if (!dir.exists(file.path("tests", "reference"))) {
  stop("run from the repository root: Rscript tests/reference/safety_reference.R")
}
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

versions <- list(
  source           = "tests/reference/safety_reference.R",
  r_version        = R.version.string,
  stats_version    = as.character(packageVersion("stats")),
  survival_version = as.character(packageVersion("survival")),
  MASS_version     = as.character(packageVersion("MASS")),
  cmprsk_version   = as.character(packageVersion("cmprsk")),
  jsonlite_version = as.character(packageVersion("jsonlite"))
)

num <- function(x) unname(as.numeric(x))
vec <- function(x) I(unname(as.numeric(x)))   # always a JSON array, even of length 1
nan_null <- function(x) if (length(x) == 1 && is.na(x)) NULL else num(x)

write_json_fixture <- function(obj, name) {
  jsonlite::write_json(c(versions, obj), file.path(out_dir, name), auto_unbox = TRUE, digits = NA,
                       pretty = TRUE, null = "null", na = "null")
}
write_data <- function(df, name) {
  write.csv(df, file.path(data_dir, name), row.names = FALSE, quote = FALSE)
  file.path("data", name)
}

# ---------------------------------------------------------------------------------------------------------
# 1. Adverse-event counts per patient with unequal follow-up (person-years), overdispersed (negative binomial).
set.seed(20190415)
n_aza <- 46; n_mmf <- 38; n <- n_aza + n_mmf
arm <- c(rep("AZA", n_aza), rep("MMF", n_mmf))
py <- round(runif(n, 0.1, 5), 2)                                  # 0.1 to 5 years, two decimals
ae <- data.frame(patient_id = sprintf("R%03d", seq_len(n)), arm = arm,
                 n_events = rnbinom(n, size = 1.3, mu = ifelse(arm == "AZA", 0.45, 0.25) * py),
                 person_years = py, stringsAsFactors = FALSE)
ae_file <- write_data(ae, "ae_counts.csv")

# zero events in the compared arm (AZA): the exact interval still exists, the GLMs do not (infinite estimate)
set.seed(20190416)
n0 <- 24
ae0 <- data.frame(patient_id = sprintf("Z%03d", seq_len(n0)), arm = rep(c("AZA", "MMF"), each = n0 / 2),
                  n_events = 0L, person_years = round(runif(n0, 0.2, 3), 2), stringsAsFactors = FALSE)
ae0$n_events[ae0$arm == "MMF"] <- rpois(n0 / 2, 0.9 * ae0$person_years[ae0$arm == "MMF"])
ae0_file <- write_data(ae0, "ae_counts_zero.csv")

tight <- glm.control(epsilon = 1e-14, maxit = 200)

rate_fixture <- function(d, file, fit_models = TRUE) {
  d$arm <- factor(d$arm, levels = c("MMF", "AZA"))
  by_arm <- lapply(c("AZA", "MMF"), function(a) {
    x <- sum(d$n_events[d$arm == a]); t <- sum(d$person_years[d$arm == a])
    pt <- poisson.test(x, t)
    list(arm = a, n = sum(d$arm == a), events = x, person_years = num(t), rate_per_100py = num(100 * pt$estimate),
         ci_low = num(100 * pt$conf.int[1]), ci_high = num(100 * pt$conf.int[2]))
  })
  x <- c(sum(d$n_events[d$arm == "AZA"]), sum(d$n_events[d$arm == "MMF"]))
  t <- c(sum(d$person_years[d$arm == "AZA"]), sum(d$person_years[d$arm == "MMF"]))
  pt2 <- poisson.test(x, t)
  out <- list(data = file, by_arm = by_arm,
              exact = list(call = "poisson.test(c(x_AZA, x_MMF), c(t_AZA, t_MMF))", estimate = num(pt2$estimate),
                           ci_low = num(pt2$conf.int[1]), ci_high = num(pt2$conf.int[2]), p = num(pt2$p.value)))
  if (!fit_models) return(out)
  pois <- function(control) {
    g <- glm(n_events ~ arm + offset(log(person_years)), family = poisson, data = d, control = control)
    sc <- summary(g)$coefficients
    ci <- confint.default(g)["armAZA", ]
    list(coef = num(coef(g)), se = num(sc[, "Std. Error"]), z = num(sc["armAZA", "z value"]),
         p = num(sc["armAZA", "Pr(>|z|)"]), rate_ratio = num(exp(coef(g)["armAZA"])), ci_low = num(exp(ci[1])),
         ci_high = num(exp(ci[2])), deviance = num(deviance(g)), null_deviance = num(g$null.deviance),
         df_residual = num(g$df.residual), pearson_chisq = num(sum(residuals(g, type = "pearson")^2)),
         loglik = num(logLik(g)), iter = num(g$iter))
  }
  nb <- function(control) {
    g <- glm.nb(n_events ~ arm + offset(log(person_years)), data = d, control = control)
    sc <- summary(g)$coefficients
    ci <- confint.default(g)["armAZA", ]
    list(theta = num(g$theta), se_theta = num(g$SE.theta), coef = num(coef(g)), se = num(sc[, "Std. Error"]),
         z = num(sc["armAZA", "z value"]), p = num(sc["armAZA", "Pr(>|z|)"]),
         rate_ratio = num(exp(coef(g)["armAZA"])), ci_low = num(exp(ci[1])), ci_high = num(exp(ci[2])),
         loglik = num(g$twologlik / 2), aic = num(g$aic), iter = num(g$iter))
  }
  out$terms <- I(c("(Intercept)", "armAZA"))
  out$poisson_glm <- list(call = "glm(n_events ~ arm + offset(log(person_years)), family = poisson); confint.default",
                          default = pois(glm.control()), tight = pois(tight))
  out$negative_binomial <- list(call = "MASS::glm.nb(n_events ~ arm + offset(log(person_years))); confint.default",
                                default = nb(glm.control(maxit = 25)), tight = nb(tight))
  out
}

rates_fx <- list(arms = I(c("AZA", "MMF")), reference_arm = "MMF",
                 overdispersed = rate_fixture(ae, ae_file),
                 zero_events = rate_fixture(ae0, ae0_file, fit_models = FALSE))
write_json_fixture(rates_fx, "rates.json")

# ---------------------------------------------------------------------------------------------------------
# 2. Competing risks: time to stopping the arm drug (whole months: ties between events, and between events and
#    censorings), cause 1 = stopped for an adverse event, 2 = stopped for another reason or switched drug,
#    0 = censored (end of follow-up).
set.seed(20190801)
n_aza <- 52; n_mmf <- 44; n <- n_aza + n_mmf
arm <- c(rep("AZA", n_aza), rep("MMF", n_mmf))
t_ae <- rexp(n, ifelse(arm == "AZA", 1 / 40, 1 / 90))
t_other <- rexp(n, 1 / 60)
cens <- pmin(runif(n, 3, 80), 60)
time <- pmax(ceiling(pmin(t_ae, t_other, cens)), 1)
status <- ifelse(cens <= pmin(t_ae, t_other), 0L, ifelse(t_ae < t_other, 1L, 2L))
cr <- data.frame(patient_id = sprintf("C%03d", seq_len(n)), arm = arm, time = time, status = status,
                 stringsAsFactors = FALSE)
cr_file <- write_data(cr, "competing_risks.csv")
cr$arm <- factor(cr$arm, levels = c("MMF", "AZA"))
cr$state <- factor(cr$status, levels = 0:2, labels = c("censor", "ae", "other"))
report_times <- c(6, 12, 24, 36, 48, 60)

aj <- survfit(Surv(time, state) ~ arm, data = cr)               # Aalen-Johansen; conf.type "log" (default)
aj_rows <- list()
strata_names <- sub("^arm=", "", names(aj$strata))
strata_end <- cumsum(aj$strata)
strata_start <- c(1, head(strata_end, -1) + 1)
for (k in seq_along(strata_names)) {
  for (i in strata_start[k]:strata_end[k]) {
    aj_rows[[length(aj_rows) + 1]] <- list(
      arm = strata_names[k], time = num(aj$time[i]), n_risk = num(aj$n.risk[i, 1]),
      n_event = vec(aj$n.event[i, 2:3]), n_censor = num(aj$n.censor[i]),
      pstate = vec(aj$pstate[i, ]), std_err = vec(aj$std.err[i, ]),
      lower = I(sapply(aj$lower[i, ], nan_null)), upper = I(sapply(aj$upper[i, ], nan_null)))
  }
}

ci <- cuminc(cr$time, cr$status, cr$arm, cencode = 0)
tp <- timepoints(ci, report_times)
cuminc_at <- list()
for (nm in rownames(tp$est)) {
  parts <- strsplit(nm, " ")[[1]]
  cuminc_at[[length(cuminc_at) + 1]] <- list(arm = parts[1], cause = as.integer(parts[2]), times = vec(report_times),
                                             est = vec(tp$est[nm, ]), var = vec(tp$var[nm, ]))
}
cuminc_full <- lapply(names(ci)[names(ci) != "Tests"], function(nm) {
  parts <- strsplit(nm, " ")[[1]]
  list(arm = parts[1], cause = as.integer(parts[2]), time = vec(ci[[nm]]$time), est = vec(ci[[nm]]$est),
       var = vec(ci[[nm]]$var))
})
gray <- lapply(seq_len(nrow(ci$Tests)), function(i) list(cause = as.integer(rownames(ci$Tests)[i]),
  stat = num(ci$Tests[i, "stat"]), p = num(ci$Tests[i, "pv"]), df = num(ci$Tests[i, "df"])))

cox_fx <- function(fit, call) {
  sc <- summary(fit)
  list(call = call, coef = num(coef(fit)), se = num(sqrt(diag(vcov(fit)))), hr = num(exp(coef(fit))),
       ci_low = num(sc$conf.int[1, "lower .95"]), ci_high = num(sc$conf.int[1, "upper .95"]),
       z = num(sc$coefficients[1, "z"]), p = num(sc$coefficients[1, "Pr(>|z|)"]), loglik = vec(fit$loglik),
       robust_se = if (!is.null(fit$naive.var)) num(sqrt(diag(fit$var))) else NULL,
       naive_se = if (!is.null(fit$naive.var)) num(sqrt(diag(fit$naive.var))) else NULL)
}

cause_fx <- function(cause) {
  cs_efron <- coxph(Surv(time, status == cause) ~ arm, data = cr)
  cs_breslow <- coxph(Surv(time, status == cause) ~ arm, data = cr, ties = "breslow")
  fg <- finegray(Surv(time, state) ~ ., data = cr[, c("time", "state", "arm", "patient_id")],
                 etype = levels(cr$state)[cause + 1])
  fg_efron <- coxph(Surv(fgstart, fgstop, fgstatus) ~ arm, data = fg, weights = fgwt)
  fg_breslow <- coxph(Surv(fgstart, fgstop, fgstatus) ~ arm, data = fg, weights = fgwt, ties = "breslow")
  fg_robust <- coxph(Surv(fgstart, fgstop, fgstatus) ~ arm + cluster(patient_id), data = fg, weights = fgwt)
  fg_robust_breslow <- coxph(Surv(fgstart, fgstop, fgstatus) ~ arm + cluster(patient_id), data = fg,
                             weights = fgwt, ties = "breslow")
  cr_fit <- crr(cr$time, cr$status, cov1 = matrix(as.numeric(cr$arm == "AZA"), ncol = 1), failcode = cause,
                cencode = 0)
  list(cause = cause,
       cause_specific = list(efron = cox_fx(cs_efron, sprintf("coxph(Surv(time, status == %d) ~ arm)", cause)),
                             breslow = cox_fx(cs_breslow, sprintf("coxph(Surv(time, status == %d) ~ arm, ties = 'breslow')", cause))),
       finegray = list(
         data_call = sprintf("finegray(Surv(time, state) ~ ., data, etype = '%s')", levels(cr$state)[cause + 1]),
         expanded_rows = nrow(fg),
         efron = cox_fx(fg_efron, "coxph(Surv(fgstart, fgstop, fgstatus) ~ arm, weights = fgwt)"),
         breslow = cox_fx(fg_breslow, "coxph(Surv(fgstart, fgstop, fgstatus) ~ arm, weights = fgwt, ties = 'breslow')"),
         robust_efron = cox_fx(fg_robust, "coxph(... ~ arm + cluster(patient_id), weights = fgwt)"),
         robust_breslow = cox_fx(fg_robust_breslow, "coxph(... ~ arm + cluster(patient_id), weights = fgwt, ties = 'breslow')")),
       crr = list(call = sprintf("crr(time, status, cov1 = arm == 'AZA', failcode = %d, cencode = 0)", cause),
                  coef = num(cr_fit$coef), se = num(sqrt(diag(cr_fit$var))), loglik = num(cr_fit$loglik),
                  converged = cr_fit$converged))
}

cr_fx <- list(data = cr_file, arms = I(c("AZA", "MMF")), reference_arm = "MMF", causes = vec(c(1, 2)),
              cause_labels = I(c("adverse_event", "other")), report_times = vec(report_times),
              aalen_johansen = list(call = "survfit(Surv(time, factor(status, 0:2)) ~ arm)  # conf.type = 'log'",
                                    states = I(aj$states), conf_type = aj$conf.type, rows = aj_rows),
              cuminc = list(call = "cmprsk::cuminc(time, status, arm, cencode = 0); timepoints(fit, report_times)",
                            at = cuminc_at, full = cuminc_full, gray = gray),
              models = lapply(1:2, cause_fx))
write_json_fixture(cr_fx, "competing_risks.json")

cat("wrote", file.path(out_dir, c("rates.json", "competing_risks.json")), sep = "\n")
