#!/usr/bin/env Rscript
# Reference fixture for emmeans' weighting options, cov.keep and multiplicity adjustments (issue 15, items 4
# and 6), as ildstudy.lmm.emmeans / ildstudy.lmm.adjust reproduce them.
#
# Run from the repository root:
#     Rscript tests/reference/emmeans_options.R
# Reads tests/reference/lmm/data/ild110.csv (written by lmm_reference.R) and writes
# tests/reference/lmm/emmeans_options/ild110_options.json. Needs r-base-core r-cran-lme4 r-cran-lmertest
# r-cran-emmeans r-cran-mvtnorm r-cran-jsonlite. The Python test suite only reads the output; it never runs R.
#
# The ild110 data have no factor with three or more levels, so one is derived, deterministically and
# identically in tests/test_lmm_emmeans_options.py, from the patient number k of the id "P<k>":
#     diagnosis = c("ASyS", "ASyS", "ASyS", "DM", "DM", "PM", "PM")[k %% 7 + 1]
# (a patient-level 3-level factor with unequal frequencies; levels ASyS (reference), DM, PM).
#
# Model: fvc ~ months * arm + female + age + antisynth + smoker + diagnosis + (1 + months | id), REML, lme4's
# default optimiser; marginal means with emm_options(lmer.df = "satterthwaite").

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(emmeans)
  library(mvtnorm)
  library(jsonlite)
})

emm_options(lmer.df = "satterthwaite")

lmm_dir <- file.path("tests", "reference", "lmm")
out_dir <- file.path(lmm_dir, "emmeans_options")
if (!dir.exists(lmm_dir)) stop("run from the repository root: Rscript tests/reference/emmeans_options.R")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

num <- function(x) unname(as.numeric(x))
vec <- function(x) I(unname(x))

ild <- utils::read.csv(file.path(lmm_dir, "data", "ild110.csv"), stringsAsFactors = FALSE)
ild$arm <- factor(ild$arm, levels = c("MMF", "AZA"))
k <- as.integer(substring(ild$id, 2))
ild$diagnosis <- factor(c("ASyS", "ASyS", "ASyS", "DM", "DM", "PM", "PM")[k %% 7 + 1], levels = c("ASyS", "DM", "PM"))

formula <- "fvc ~ months * arm + female + age + antisynth + smoker + diagnosis + (1 + months | id)"
fit <- lmerTest::lmer(as.formula(formula), data = ild, REML = TRUE)
months <- c(0, 12, 36)

co <- summary(fit)$coefficients
fixed <- lapply(seq_len(nrow(co)), function(i) list(
  term = rownames(co)[i], estimate = num(co[i, 1]), se = num(co[i, 2]), df = num(co[i, 3])))

cov_keep_json <- function(ck) if (length(ck) == 0) vec(character(0)) else vec(ck)

rows_of <- function(s, estimate) {
  keep <- setdiff(names(s), c(estimate, "SE", "df", "lower.CL", "upper.CL", "t.ratio", "p.value"))
  lapply(seq_len(nrow(s)), function(i) {
    row <- list()
    for (v in keep) row[[v]] <- if (is.factor(s[[v]]) || is.character(s[[v]])) as.character(s[[v]][i]) else num(s[[v]][i])
    row$estimate <- num(s[[estimate]][i]); row$se <- num(s$SE[i]); row$df <- num(s$df[i])
    if (!is.null(s$lower.CL)) { row$lower_cl <- num(s$lower.CL[i]); row$upper_cl <- num(s$upper.CL[i]) }
    if (!is.null(s$t.ratio)) { row$t_ratio <- num(s$t.ratio[i]); row$p_value <- num(s$p.value[i]) }
    row
  })
}

# 1. Marginal means: every weighting option x cov.keep, arm by months (and arm averaged over the months).
mean_block <- function(specs, by, weights, cov_keep) {
  form <- if (is.null(by)) as.formula(paste("~", specs)) else as.formula(paste("~", specs, "|", by))
  emm <- emmeans(fit, form, at = list(months = months), weights = weights, cov.keep = cov_keep)
  s <- as.data.frame(summary(emm, infer = c(TRUE, FALSE), level = 0.95))
  list(specs = specs, by = if (is.null(by)) vec(character(0)) else by, at = list(months = vec(months)),
       weights = weights, cov_keep = cov_keep_json(cov_keep), means = rows_of(s, "emmean"))
}
weightings <- c("equal", "proportional", "outer", "cells", "flat")
means <- list()
for (ck in list("2", "0")) for (w in weightings) means[[length(means) + 1]] <- mean_block("arm", "months", w, ck)
for (w in c("equal", "proportional", "cells")) means[[length(means) + 1]] <- mean_block("arm", NULL, w, "2")
means[[length(means) + 1]] <- mean_block("arm", "months", "proportional", "female")
means[[length(means) + 1]] <- mean_block("diagnosis", "arm", "proportional", "2")

# With an additive model, "outer" and "proportional" give the same means (only each covariate's margins
# matter); a second model with an interaction between two averaged variables (female x diagnosis) separates them.
formula2 <- "fvc ~ months * arm + female * diagnosis + age + (1 + months | id)"
fit2 <- lmerTest::lmer(as.formula(formula2), data = ild, REML = TRUE)
interaction_means <- lapply(weightings, function(w) {
  emm <- emmeans(fit2, ~ arm | months, at = list(months = months), weights = w)
  s <- as.data.frame(summary(emm, infer = c(TRUE, FALSE), level = 0.95))
  list(specs = "arm", by = "months", at = list(months = vec(months)), weights = w, cov_keep = vec("2"),
       means = rows_of(s, "emmean"))
})
co2 <- summary(fit2)$coefficients
interaction_model <- list(
  formula = formula2,
  fixed_effects = lapply(seq_len(nrow(co2)), function(i) list(term = rownames(co2)[i], estimate = num(co2[i, 1]))),
  vcov_fixed = unname(lapply(seq_len(nrow(co2)), function(i) vec(num(as.matrix(vcov(fit2))[i, ])))),
  means = interaction_means)

# cov.keep = character(0) is emmeans' threshold 1, the same grid as "0": checked here, stored once.
e0 <- summary(emmeans(fit, ~ arm | months, at = list(months = months), cov.keep = "0"))
e_none <- summary(emmeans(fit, ~ arm | months, at = list(months = months), cov.keep = character(0)))
stopifnot(isTRUE(all.equal(e0$emmean, e_none$emmean, tolerance = 1e-12)))

# 2. Contrasts AZA - MMF by months, unadjusted and adjusted, per month (family of one: emmeans does not adjust)
#    and over the three months (update(ct, by = NULL): one family of three). mvt uses mvtnorm, a randomised
#    integration; each call is preceded by set.seed(mvt_seed), and mvt_spread records the range over 20 seeds.
mvt_seed <- 20190401
adjusts <- c("none", "holm", "bonferroni", "sidak", "mvt")
contrast_block <- function(ct, family, weights, adjust, seed = mvt_seed) {
  set.seed(seed)
  s <- as.data.frame(summary(ct, infer = c(TRUE, TRUE), level = 0.95, adjust = adjust))
  list(family = family, weights = weights, adjust = adjust, rows = rows_of(s, "estimate"),
       messages = vec(as.character(attr(summary(ct, infer = c(TRUE, TRUE), adjust = adjust), "mesg"))))
}
contrasts <- list()
for (w in c("equal", "cells")) {
  emm <- emmeans(fit, ~ arm | months, at = list(months = months), weights = w)
  ct <- contrast(emm, "trt.vs.ctrl")
  ct_all <- update(ct, by = NULL)
  for (a in adjusts) {
    if (w != "equal" && a != "none" && a != "mvt") next
    contrasts[[length(contrasts) + 1]] <- contrast_block(ct, "by months", w, a)
    contrasts[[length(contrasts) + 1]] <- contrast_block(ct_all, "all months", w, a)
  }
}
# Change from month 0 within arm: families of two contrasts per arm.
emm_m <- emmeans(fit, ~ months | arm, at = list(months = months))
ct_m <- contrast(emm_m, "trt.vs.ctrl1")
for (a in adjusts) contrasts[[length(contrasts) + 1]] <- contrast_block(ct_m, "by arm", "equal", a)

ct_all <- update(contrast(emmeans(fit, ~ arm | months, at = list(months = months)), "trt.vs.ctrl"), by = NULL)
V <- vcov(ct_all)
spread <- t(sapply(1:20, function(sd) {
  set.seed(sd)
  s <- summary(ct_all, infer = c(TRUE, TRUE), adjust = "mvt")
  c(s$p.value, s$lower.CL, s$upper.CL)
}))
mvt_spread <- list(seeds = "1:20", p_min = vec(apply(spread[, 1:3], 2, min)), p_max = vec(apply(spread[, 1:3], 2, max)),
                   lower_min = vec(apply(spread[, 4:6], 2, min)), lower_max = vec(apply(spread[, 4:6], 2, max)),
                   upper_min = vec(apply(spread[, 7:9], 2, min)), upper_max = vec(apply(spread[, 7:9], 2, max)))

# emmeans' own adjustment functions on a small family whose df differ widely (3.7, 12.2, 40.6), where the df
# rule matters: mvt uses each test's own df through .fix.df (3.7 -> 3, 12.2 -> 12, 40.6 -> 40).
rule_t <- c(2.2, -1.5, 2.9)
rule_df <- c(3.7, 12.2, 40.6)
rule_corr <- matrix(c(1, 0.4, 0.2, 0.4, 1, 0.5, 0.2, 0.5, 1), 3)
attr(rule_corr, "by.rows") <- list(1:3)
rule <- list(t = vec(rule_t), df = vec(rule_df), corr = unname(lapply(1:3, function(i) vec(rule_corr[i, ]))),
             fix_df = vec(emmeans:::.fix.df(rule_df)))
for (a in adjusts) {
  set.seed(mvt_seed)
  pv <- emmeans:::.adj.p.value(rule_t, rule_df, a, c(3, 3, 2), 0, if (a == "mvt") rule_corr else NULL, list(1:3), NULL)
  set.seed(mvt_seed)
  cv <- emmeans:::.adj.critval(0.95, rule_df, a, c(3, 3, 2), 0, if (a == "mvt") rule_corr else NULL, list(1:3), NULL)
  rule[[a]] <- list(p = vec(pv$pval), critical_value = vec(num(cv$cv)), adjust = pv$adjust, ci_adjust = cv$adjust)
}

# 3. Slopes with weights (linear time: the slope does not depend on the weights; a pass-through check).
tr <- emtrends(fit, ~ arm | months, var = "months", at = list(months = months), weights = "cells")
trends <- list(weights = "cells", var = "months", rows = rows_of(as.data.frame(summary(tr, infer = c(TRUE, TRUE))), "months.trend"))

fx <- list(
  case = "ild110_options", source = "tests/reference/emmeans_options.R",
  r_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  emmeans_version = as.character(packageVersion("emmeans")),
  mvtnorm_version = as.character(packageVersion("mvtnorm")),
  jsonlite_version = as.character(packageVersion("jsonlite")),
  data = "ild110.csv",
  derived = list(diagnosis = 'c("ASyS", "ASyS", "ASyS", "DM", "DM", "PM", "PM")[k %% 7 + 1], k = patient number in id "P<k>"'),
  diagnosis_rows = as.list(table(ild$diagnosis)),
  formula = formula, factors = list(arm = vec(levels(ild$arm)), diagnosis = vec(levels(ild$diagnosis))),
  n_obs = nobs(fit), reml_criterion = num(getME(fit, "devcomp")$cmp[["REML"]]),
  fixed_effects = fixed,
  vcov_fixed = unname(lapply(seq_len(length(fixef(fit))), function(i) vec(num(as.matrix(vcov(fit))[i, ])))),
  means = means, interaction_model = interaction_model, contrasts = contrasts,
  contrast_vcov_all_months = unname(lapply(seq_len(nrow(V)), function(i) vec(num(V[i, ])))),
  mvt_seed = mvt_seed, mvt_spread = mvt_spread, df_rule = rule, trends = trends)
jsonlite::write_json(fx, file.path(out_dir, "ild110_options.json"), auto_unbox = TRUE, digits = NA, pretty = TRUE)
cat("written", file.path(out_dir, "ild110_options.json"), "\n")
