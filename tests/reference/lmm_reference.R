#!/usr/bin/env Rscript
# Reference fixtures for ildstudy's linear mixed-model engine (issue 4; splines, hinge time and emtrends: issue 15).
#
# Run from the repository root:
#     Rscript tests/reference/lmm_reference.R
# Writes the data sets to tests/reference/lmm/data/*.csv and one JSON fixture per case to
# tests/reference/lmm/<case>.json. Needs the Debian packages r-base-core r-cran-lme4 r-cran-lmertest
# r-cran-emmeans r-cran-nlme r-cran-jsonlite. The Python test suite only reads the outputs; it never runs R.
#
# Every model is fitted with lmerTest::lmer at lme4's default settings; fixed-effect df and p come from
# summary(fit)$coefficients (Satterthwaite), marginal means and contrasts from emmeans with
# emm_options(lmer.df = "satterthwaite").

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(emmeans)
  library(nlme, include.only = character(0))
  library(jsonlite)
})

emm_options(lmer.df = "satterthwaite")

out_dir  <- file.path("tests", "reference", "lmm")
data_dir <- file.path(out_dir, "data")
if (!dir.exists(out_dir)) stop("run from the repository root: Rscript tests/reference/lmm_reference.R")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

versions <- list(
  r_version        = R.version.string,
  lme4_version     = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  emmeans_version  = as.character(packageVersion("emmeans")),
  nlme_version     = as.character(packageVersion("nlme")),
  Matrix_version   = as.character(packageVersion("Matrix")),
  jsonlite_version = as.character(packageVersion("jsonlite"))
)

num <- function(x) unname(as.numeric(x))
vec <- function(x) I(unname(x))   # always a JSON array, even of length 1 (auto_unbox would unbox it)

write_data <- function(df, file) {
  # Factors are written as their labels; the fixture's "factors" entry carries the level order.
  utils::write.csv(df, file.path(data_dir, file), row.names = FALSE, na = "")
  file
}

factor_levels <- function(df, group) {
  fl <- list()
  for (col in setdiff(names(df), group)) if (is.factor(df[[col]])) fl[[col]] <- vec(levels(df[[col]]))
  if (length(fl) == 0) fl <- setNames(list(), character(0))
  fl
}

fixed_table <- function(fit) {
  co <- summary(fit)$coefficients   # lmerTest: Estimate, Std. Error, df, t value, Pr(>|t|)
  lapply(seq_len(nrow(co)), function(i) list(
    term = rownames(co)[i], estimate = num(co[i, "Estimate"]), se = num(co[i, "Std. Error"]),
    df = num(co[i, "df"]), t = num(co[i, "t value"]), p = num(co[i, "Pr(>|t|)"])))
}

random_table <- function(fit, group) {
  vc <- VarCorr(fit)[[group]]
  sds <- attr(vc, "stddev")
  corr <- attr(vc, "correlation")
  list(terms = vec(names(sds)), sd = vec(num(sds)), corr = unname(lapply(seq_len(nrow(corr)), function(i) vec(num(corr[i, ])))))
}

ranef_table <- function(fit, group) {
  re <- ranef(fit)[[group]]
  list(levels = vec(rownames(re)), terms = vec(names(re)),
       values = unname(lapply(seq_len(nrow(re)), function(i) vec(num(re[i, ])))))
}

emm_means <- function(emm) {
  s <- as.data.frame(summary(emm, infer = c(TRUE, FALSE), level = 0.95))
  vars <- setdiff(names(s), c("emmean", "SE", "df", "lower.CL", "upper.CL"))
  lapply(seq_len(nrow(s)), function(i) {
    row <- list()
    for (v in vars) row[[v]] <- if (is.factor(s[[v]])) as.character(s[[v]][i]) else num(s[[v]][i])
    c(row, list(emmean = num(s$emmean[i]), se = num(s$SE[i]), df = num(s$df[i]),
                lower_cl = num(s$lower.CL[i]), upper_cl = num(s$upper.CL[i])))
  })
}

emm_contrasts <- function(con) {
  s <- as.data.frame(summary(con, infer = c(TRUE, TRUE), level = 0.95, adjust = "none"))
  vars <- setdiff(names(s), c("contrast", "estimate", "SE", "df", "lower.CL", "upper.CL", "t.ratio", "p.value"))
  lapply(seq_len(nrow(s)), function(i) {
    row <- list(contrast = as.character(s$contrast[i]))
    for (v in vars) row[[v]] <- if (is.factor(s[[v]])) as.character(s[[v]][i]) else num(s[[v]][i])
    c(row, list(estimate = num(s$estimate[i]), se = num(s$SE[i]), df = num(s$df[i]),
                lower_cl = num(s$lower.CL[i]), upper_cl = num(s$upper.CL[i]),
                t_ratio = num(s$t.ratio[i]), p_value = num(s$p.value[i])))
  })
}

# One emmeans block: means of `specs` by `by` at `at`, and the contrasts given as an emmeans method
# ("revpairwise" gives "AZA - MMF" when MMF is the first level; "trt.vs.ctrl1" gives "later - first").
emm_block <- function(fit, specs, by, at, method, note = NULL) {
  form <- as.formula(paste("~", specs, "|", by))
  emm <- if (length(at)) emmeans(fit, form, at = at) else emmeans(fit, form)
  con <- contrast(emm, method = method, adjust = "none")
  blk <- list(specs = specs, by = by,
              at = if (length(at)) lapply(at, function(a) vec(num(a))) else setNames(list(), character(0)),
              method = method, adjust = "none", level = 0.95,
              means = emm_means(emm), contrasts = emm_contrasts(con))
  if (!is.null(note)) blk$note <- note
  blk
}

# Slopes of marginal means (emtrends, emmeans' default delta.var = 0.001 * diff(range(var)), forward difference)
# and their contrasts (unadjusted), within each `by` cell.
trend_block <- function(fit, specs, by, var, at, method, note = NULL) {
  form <- as.formula(paste("~", specs, "|", by))
  tr <- emtrends(fit, form, var = var, at = at)
  s <- as.data.frame(summary(tr, infer = c(TRUE, TRUE), level = 0.95, adjust = "none"))
  trend <- paste0(var, ".trend")
  rows <- lapply(seq_len(nrow(s)), function(i) {
    row <- list()
    for (v in c(specs, by)) row[[v]] <- if (is.factor(s[[v]])) as.character(s[[v]][i]) else num(s[[v]][i])
    c(row, list(trend = num(s[[trend]][i]), se = num(s$SE[i]), df = num(s$df[i]),
                lower_cl = num(s$lower.CL[i]), upper_cl = num(s$upper.CL[i]),
                t_ratio = num(s$t.ratio[i]), p_value = num(s$p.value[i])))
  })
  x <- model.frame(fit)[[var]]
  if (is.null(x)) x <- fit@frame[[var]]
  if (is.null(x)) x <- eval(parse(text = var), envir = lme4::getData(fit))
  blk <- list(specs = specs, by = by, var = var, at = lapply(at, function(a) vec(num(a))),
              delta_var = 0.001 * diff(range(x)), method = method, adjust = "none", level = 0.95,
              slopes = rows, contrasts = emm_contrasts(contrast(tr, method = method, adjust = "none")))
  if (!is.null(note)) blk$note <- note
  blk
}

fit_case <- function(case, df, data_file, formula, group, reml = TRUE, emm = list(), note = NULL,
                     trends = list(), extra = list(), control = lmerControl()) {
  n_in <- nrow(df)
  fit <- lmerTest::lmer(as.formula(formula), data = df, REML = reml, control = control)
  msgs <- as.character(c(fit@optinfo$conv$lme4$messages, unlist(fit@optinfo$warnings)))
  conv_msgs <- msgs[!grepl("boundary \\(singular\\) fit", msgs)]   # the singular note is not a convergence failure
  ll <- logLik(fit)
  fx <- list(
    case = case, source = "tests/reference/lmm_reference.R")
  fx <- c(fx, versions, list(
    data = data_file, formula = formula, factors = factor_levels(df, group),
    method = if (reml) "REML" else "ML",
    n_obs = nobs(fit), n_rows_in_file = n_in, n_groups = num(ngrps(fit)[[group]]), group = group))
  if (reml) fx$reml_criterion <- num(getME(fit, "devcomp")$cmp[["REML"]])
  else fx$deviance <- num(getME(fit, "devcomp")$cmp[["dev"]])
  fx <- c(fx, list(
    loglik = num(ll), loglik_df = num(attr(ll, "df")), aic = num(AIC(fit)), bic = num(BIC(fit)),
    singular = isSingular(fit), converged = length(conv_msgs) == 0,
    convergence_warnings = vec(conv_msgs), lme4_messages = vec(msgs),
    optimizer = fit@optinfo$optimizer,
    theta = vec(num(getME(fit, "theta"))), theta_names = vec(names(getME(fit, "theta"))),
    fixed_effects = fixed_table(fit),
    vcov_fixed = unname(lapply(seq_len(length(fixef(fit))), function(i) vec(num(as.matrix(vcov(fit))[i, ])))),
    random_effects = random_table(fit, group),
    residual_sd = num(sigma(fit)),
    ranef = ranef_table(fit, group)))
  # A second fit with the bobyqa optimiser, as a check of how close lme4's default optimum is to the true one
  # (the engine is required to be no worse than the default fit above).
  fit_b <- suppressMessages(suppressWarnings(update(fit, control = lmerControl(optimizer = "bobyqa"))))
  crit_b <- num(getME(fit_b, "devcomp")$cmp[[if (reml) "REML" else "dev"]])
  fx$optimum_check <- list(optimizer = "bobyqa", criterion = crit_b,
                           criterion_minus_default = crit_b - (if (reml) fx$reml_criterion else fx$deviance),
                           theta = vec(num(getME(fit_b, "theta"))))
  if (length(emm)) fx$emmeans <- lapply(emm, function(e) do.call(emm_block, c(list(fit = fit), e)))
  if (length(trends)) fx$emtrends <- lapply(trends, function(e) do.call(trend_block, c(list(fit = fit), e)))
  fx <- c(fx, extra)
  if (!is.null(note)) fx$note <- note
  jsonlite::write_json(fx, file.path(out_dir, paste0(case, ".json")),
                       auto_unbox = TRUE, digits = NA, pretty = TRUE)
  cat(sprintf("%-28s n=%4d groups=%3d %s crit=%.6f singular=%s msgs=%d\n", case, nobs(fit),
              ngrps(fit)[[group]], fx$method, if (reml) fx$reml_criterion else fx$deviance,
              fx$singular, length(msgs)))
  invisible(fit)
}

# ---------------------------------------------------------------------------------------------------------
# 1. lme4's sleepstudy: random intercept and slope (REML, ML), random intercept only.
sleep <- as.data.frame(lme4::sleepstudy)[, c("Subject", "Days", "Reaction")]
sleep$Subject <- as.character(sleep$Subject)   # grouping ids as plain strings
sf <- write_data(sleep, "sleepstudy.csv")
fit_case("sleepstudy_reml", sleep, sf, "Reaction ~ Days + (Days | Subject)", "Subject", TRUE)
fit_case("sleepstudy_ml", sleep, sf, "Reaction ~ Days + (Days | Subject)", "Subject", FALSE)
fit_case("sleepstudy_intercept_reml", sleep, sf, "Reaction ~ Days + (1 | Subject)", "Subject", TRUE)

# ---------------------------------------------------------------------------------------------------------
# 2. nlme's Orthodont: factor interaction age * Sex; Sex keeps R's level order (Male, Female) so the
#    reference level is Male and the terms are SexFemale, age:SexFemale. Subject is written as plain strings.
orth <- as.data.frame(nlme::Orthodont)
orth <- data.frame(Subject = as.character(orth$Subject), Sex = factor(as.character(orth$Sex),
                   levels = c("Male", "Female")), age = orth$age, distance = orth$distance)
of <- write_data(orth, "orthodont.csv")
orth_emm <- list(list(specs = "Sex", by = "age", at = list(age = c(8, 14)), method = "revpairwise"))
fit_case("orthodont_reml", orth, of, "distance ~ age * Sex + (age | Subject)", "Subject", TRUE, orth_emm)
fit_case("orthodont_ml", orth, of, "distance ~ age * Sex + (age | Subject)", "Subject", FALSE)

# ---------------------------------------------------------------------------------------------------------
# 3. ILD-like study model: 110 patients, MMF (reference) / AZA, irregular visits up to 60 months.
set.seed(20190401)
n <- 110
pat <- data.frame(id = sprintf("P%03d", seq_len(n)),
                  arm = ifelse(runif(n) < 0.55, "MMF", "AZA"),
                  female = rbinom(n, 1, 0.7),
                  age = round(rnorm(n, 50, 12), 1),
                  antisynth = rbinom(n, 1, 0.6),
                  smoker = rbinom(n, 1, 0.35), stringsAsFactors = FALSE)
b0 <- rnorm(n, 0, 14)        # random intercept SD ~14 %pred
b1 <- rnorm(n, 0, 0.12)      # random slope SD ~0.12 %pred / month
b1 <- b1 + 0.002 * b0        # some intercept-slope correlation
nvis <- pmin(pmax(rpois(n, 4.5) + 1, 1), 12)
rows <- list()
for (i in seq_len(n)) {
  fu <- runif(1, 6, 60)
  mo <- if (nvis[i] > 1) c(0, sort(runif(nvis[i] - 1, 1, fu))) else 0
  mo <- round(mo, 2)
  aza <- as.numeric(pat$arm[i] == "AZA")
  mu <- 62 + 0.10 * mo + 1.5 * aza + 0.06 * mo * aza + 3 * pat$female[i] - 0.15 * (pat$age[i] - 50) +
        2 * pat$antisynth[i] - 2.5 * pat$smoker[i] + b0[i] + b1[i] * mo
  rows[[i]] <- data.frame(id = pat$id[i], months = mo, arm = pat$arm[i], female = pat$female[i],
                          age = pat$age[i], antisynth = pat$antisynth[i], smoker = pat$smoker[i],
                          fvc = round(mu + rnorm(length(mo), 0, 5), 1))
}
ild <- do.call(rbind, rows)
ild$arm <- factor(ild$arm, levels = c("MMF", "AZA"))
ild <- ild[, c("id", "months", "arm", "female", "age", "antisynth", "smoker", "fvc")]
ildf <- write_data(ild, "ild110.csv")
ild_formula <- "fvc ~ months * arm + female + age + antisynth + smoker + (1 + months | id)"
ild_emm <- list(
  list(specs = "arm", by = "months", at = list(months = c(0, 12, 36)), method = "revpairwise",
       note = "arm means at months 0, 12, 36 (other covariates at their means); contrast AZA - MMF at each month"),
  list(specs = "months", by = "arm", at = list(months = c(0, 12, 36)), method = "trt.vs.ctrl1",
       note = "change from month 0 within arm: 'months12 - months0' etc., unadjusted"))
ild_trends <- list(list(specs = "arm", by = "months", var = "months", at = list(months = c(0, 12, 36)),
                        method = "revpairwise", note = "linear time: the slope is the same at every month"))
fit_case("ild110_reml", ild, ildf, ild_formula, "id", TRUE, ild_emm, trends = ild_trends)
fit_case("ild110_ml", ild, ildf, ild_formula, "id", FALSE, ild_emm)

# ---------------------------------------------------------------------------------------------------------
# 4. Singular fits. (a) Random-slope SD truly 0 in the simulation; lme4 lands on the boundary with the
#    slope perfectly correlated with the intercept (theta[3] = 0, corr = +-1): isSingular TRUE.
#    (b) No between-group variation at all; random intercept only: theta = 0, isSingular TRUE.
set.seed(4246)
ng <- 40
sing <- do.call(rbind, lapply(seq_len(ng), function(i) {
  t <- 0:5
  data.frame(id = sprintf("S%02d", i), time = t, y = round(10 + rnorm(1, 0, 2) + 0.5 * t + rnorm(6, 0, 1.5), 3))
}))
sgf <- write_data(sing, "singular_slope.csv")
fit_case("singular_slope_reml", sing, sgf, "y ~ time + (1 + time | id)", "id", TRUE,
         note = "simulated with random-slope SD 0: boundary fit, theta[3] = 0 (slope/intercept corr +-1)")

set.seed(500)
sing0 <- do.call(rbind, lapply(1:30, function(i) {
  n <- 2 + (i %% 4); t <- seq_len(n) - 1
  data.frame(id = sprintf("Z%02d", i), time = t, y = round(20 + 0.3 * t + rnorm(n, 0, 2), 3))
}))
sg0 <- write_data(sing0, "singular_intercept.csv")
fit_case("singular_intercept_reml", sing0, sg0, "y ~ time + (1 | id)", "id", TRUE,
         note = "simulated without between-group variation: theta = 0 (random-intercept SD 0)")

# ---------------------------------------------------------------------------------------------------------
# 5. Categorical visit time: visit a factor with levels "0","3","6","12" (in that order), arm MMF / AZA.
set.seed(1203)
nv <- 60
vis <- do.call(rbind, lapply(seq_len(nv), function(i) {
  arm <- if (i <= 32) "MMF" else "AZA"
  v <- c(0, 3, 6, 12)
  keep <- c(TRUE, runif(3) > 0.15)                 # some visits missed
  v <- v[keep]
  eff <- c(`0` = 0, `3` = 1.0, `6` = 1.8, `12` = 2.5)[as.character(v)] * (if (arm == "AZA") 1.3 else 1)
  data.frame(id = sprintf("V%02d", i), visit = as.character(v), arm = arm,
             y = round(60 + (arm == "AZA") * 1 + eff + rnorm(1, 0, 8) + rnorm(length(v), 0, 4), 2))
}))
vis$visit <- factor(vis$visit, levels = c("0", "3", "6", "12"))
vis$arm <- factor(vis$arm, levels = c("MMF", "AZA"))
vf <- write_data(vis, "visits.csv")
vis_emm <- list(list(specs = "arm", by = "visit", at = list(), method = "revpairwise"))
fit_case("visits_categorical_reml", vis, vf, "y ~ visit * arm + (1 | id)", "id", TRUE, vis_emm)

# ---------------------------------------------------------------------------------------------------------
# 6. Unbalanced groups of size 1 to 8, random intercept and slope, a 3-level factor covariate (site) that
#    emmeans averages with equal weights, and a few missing outcomes (lme4 drops those rows: na.omit).
set.seed(808)
nu <- 70
sizes <- sample(1:8, nu, replace = TRUE)
sizes[1:8] <- 1:8
unb <- do.call(rbind, lapply(seq_len(nu), function(i) {
  t <- sort(round(runif(sizes[i], 0, 4), 2))
  trt <- if (i %% 3 == 0) "B" else "A"
  site <- c("north", "south", "east")[1 + (i %% 3 + i %/% 7) %% 3]
  data.frame(g = sprintf("G%02d", i), t = t, trt = trt, site = site,
             y = round(5 + 0.8 * t + (trt == "B") * (0.5 + 0.3 * t) + c(north = 0, south = 1, east = -0.7)[site] +
                       rnorm(1, 0, 1.2) + rnorm(1, 0, 0.4) * t + rnorm(length(t), 0, 0.8), 3))
}))
unb$y[c(5, 40, 77)] <- NA
unb$trt <- factor(unb$trt, levels = c("A", "B"))
unb$site <- factor(unb$site, levels = c("east", "north", "south"))
uf <- write_data(unb, "unbalanced.csv")
unb_emm <- list(list(specs = "trt", by = "t", at = list(t = c(0, 2)), method = "revpairwise",
                     note = "site averaged with equal weights"))
fit_case("unbalanced_reml", unb, uf, "y ~ t * trt + site + (1 + t | g)", "g", TRUE, unb_emm,
         note = "group sizes 1-8 in the file; 3 rows have a missing outcome and are dropped (na.omit)")
fit_case("unbalanced_ml", unb, uf, "y ~ t * trt + site + (1 + t | g)", "g", FALSE,
         note = "group sizes 1-8 in the file; 3 rows have a missing outcome and are dropped (na.omit)")

# ---------------------------------------------------------------------------------------------------------
# 7. Non-linear time on the ild110 data (issue 15): natural cubic splines (splines::ns, knots from quantiles
#    of the fitted rows' months when df is given; explicit knots and Boundary.knots), and piecewise-linear
#    time through ildstudy's hinge basis pl(x, knots) = cbind(x, (x - k1)+, (x - k2)+, ...), columns named
#    1, 2, ... like any matrix-valued term. Means and contrasts at months up to 60 (beyond the last observed
#    month 57.17, so ns() extrapolates linearly, reusing the training knots through makepredictcall).
library(splines)
pl <- function(x, knots) {
  m <- cbind(x, sapply(knots, function(k) pmax(x - k, 0)))
  dimnames(m) <- list(NULL, seq_len(ncol(m)))
  m
}
spline_extra <- list(splines_version = as.character(packageVersion("splines")))
# lme4's default optimiser (nloptwrap) stops short on the ns(df = 3) and pl() models (max|grad| 0.004 and 0.025,
# lme4's own convergence warning); bobyqa converges without warnings, so these cases use it as the reference.
bobyqa <- lmerControl(optimizer = "bobyqa")
spline_months <- c(0, 6, 12, 24, 36, 48, 60)
spline_emm <- list(
  list(specs = "arm", by = "months", at = list(months = spline_months), method = "revpairwise",
       note = "arm means and AZA - MMF at each month; 60 lies beyond the data (linear extrapolation of ns)"),
  list(specs = "months", by = "arm", at = list(months = spline_months), method = "trt.vs.ctrl1",
       note = "change from month 0 within arm, unadjusted"))
spline_trends <- list(list(specs = "arm", by = "months", var = "months", at = list(months = c(0, 6, 12, 24, 36, 60)),
                           method = "revpairwise", note = "emtrends: forward difference, delta.var = 0.001 * range"))
covs <- " + female + age + antisynth + smoker + (1 + months | id)"
fit_case("ild110_ns_reml", ild, ildf, paste0("fvc ~ ns(months, df = 3) * arm", covs), "id", TRUE,
         spline_emm, trends = spline_trends, extra = spline_extra, control = bobyqa,
         note = "interior knots at the 1/3 and 2/3 quantiles of months over the 640 rows")
fit_case("ild110_ns_knots_reml", ild, ildf,
         "fvc ~ ns(months, knots = c(6, 18), Boundary.knots = c(0, 60)) * arm + (1 + months | id)", "id", TRUE,
         spline_emm, trends = spline_trends, extra = spline_extra, control = bobyqa,
         note = "explicit knots and boundary knots")
pl_formula <- paste0("fvc ~ pl(months, knots = c(6, 12)) * arm", covs)
pl_fit <- fit_case("ild110_pl_reml", ild, ildf, pl_formula, "id", TRUE, spline_emm, trends = spline_trends,
                   extra = spline_extra, control = bobyqa, note = "pl() as defined in this script; same fit as months + pmax(months - 6, 0) + pmax(months - 12, 0)")
# pl() is exactly the hinge terms written out: same REML criterion and fitted values.
hinge <- lmerTest::lmer(fvc ~ (months + pmax(months - 6, 0) + pmax(months - 12, 0)) * arm + female + age + antisynth +
                        smoker + (1 + months | id), data = ild, control = bobyqa)
stopifnot(isTRUE(all.equal(REMLcrit(hinge), REMLcrit(pl_fit), tolerance = 1e-8)),
          isTRUE(all.equal(unname(fitted(hinge)), unname(fitted(pl_fit)), tolerance = 1e-6)))

cat("fixtures written to", out_dir, "\n")
