#!/usr/bin/env Rscript
# Fit the benchmark model with lme4 and print one JSON object (timings, REML criterion, logLik, convergence).
#
#   Rscript benchmarks/lmm/lme4_fit.R DATA.csv [--ml] [--lmertest] [--bobyqa]
#
# --bobyqa: lmerControl(optimizer = "bobyqa") instead of lme4's default nloptwrap (a tighter optimum; used
# only as a check of the REML criterion, not for timing).
# Reads the CSV with data.table::fread when installed (else read.csv). Timings: read_s (reading the CSV),
# fit_s (lme4::lmer), summary_s (summary(); with --lmertest: lmerTest::lmer + Satterthwaite df for all
# fixed effects, i.e. what `ildstudy lmm --json` reports), total_s (from the start of this script).
t_start <- proc.time()[["elapsed"]]
args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: lme4_fit.R DATA.csv [--ml] [--lmertest] [--bobyqa]")
path <- args[[1]]
reml <- !("--ml" %in% args)
use_lmertest <- "--lmertest" %in% args
ctrl <- if ("--bobyqa" %in% args) lme4::lmerControl(optimizer = "bobyqa") else lme4::lmerControl()
formula <- fvc ~ months * arm + female + age + antisynth + smoker + (1 + months | id)

suppressPackageStartupMessages({
  library(lme4)
  if (use_lmertest) library(lmerTest)
  library(jsonlite)
})
t_loaded <- proc.time()[["elapsed"]]

has_dt <- requireNamespace("data.table", quietly = TRUE)
t0 <- proc.time()[["elapsed"]]
df <- if (has_dt) data.table::fread(path, data.table = FALSE, showProgress = FALSE) else
  utils::read.csv(path, stringsAsFactors = FALSE)
read_s <- proc.time()[["elapsed"]] - t0

t0 <- proc.time()[["elapsed"]]
fit <- if (use_lmertest) lmerTest::lmer(formula, data = df, REML = reml, control = ctrl) else
  lme4::lmer(formula, data = df, REML = reml, control = ctrl)
fit_s <- proc.time()[["elapsed"]] - t0

t0 <- proc.time()[["elapsed"]]
co <- summary(fit)$coefficients
summary_s <- proc.time()[["elapsed"]] - t0

msgs <- as.character(c(fit@optinfo$conv$lme4$messages, unlist(fit@optinfo$warnings)))
conv <- msgs[!grepl("boundary \\(singular\\) fit", msgs)]
# lme4's FAQ check for false-positive gradient warnings at large n: the Newton step solve(H, g).
derivs <- fit@optinfo$derivs
scaled_grad <- if (!is.null(derivs)) tryCatch(max(abs(solve(derivs$Hessian, derivs$gradient))), error = function(e) NA) else NA
vc <- VarCorr(fit)$id
dc <- getME(fit, "devcomp")$cmp
out <- list(
  tool = if (use_lmertest) "lmerTest" else "lme4",
  r_version = R.version.string, lme4_version = as.character(packageVersion("lme4")),
  reader = if (has_dt) paste("data.table::fread", packageVersion("data.table")) else "read.csv",
  data = path, method = if (reml) "REML" else "ML", n_obs = nobs(fit), n_groups = unname(ngrps(fit)[["id"]]),
  reml_criterion = if (reml) unname(dc[["REML"]]) else NULL,
  deviance = if (!reml) unname(dc[["dev"]]) else NULL,
  loglik = as.numeric(logLik(fit)), singular = isSingular(fit), converged = length(conv) == 0,
  messages = I(msgs), max_abs_grad = if (!is.null(derivs)) max(abs(derivs$gradient)) else NULL,
  max_abs_scaled_grad = scaled_grad, optimizer = fit@optinfo$optimizer, feval = fit@optinfo$feval,
  theta = I(unname(getME(fit, "theta"))),
  re_sd = I(unname(attr(vc, "stddev"))), re_corr = unname(attr(vc, "correlation")[1, 2]),
  residual_sd = sigma(fit),
  fixed_effects = lapply(seq_len(nrow(co)), function(i) {
    r <- list(term = rownames(co)[i], estimate = unname(co[i, "Estimate"]), se = unname(co[i, "Std. Error"]))
    if ("df" %in% colnames(co)) r$df <- unname(co[i, "df"])
    r
  }),
  load_s = t_loaded - t_start, read_s = read_s, fit_s = fit_s, summary_s = summary_s,
  total_s = proc.time()[["elapsed"]] - t_start)
cat(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA, null = "null"), "\n")
