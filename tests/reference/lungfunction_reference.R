#!/usr/bin/env Rscript
# Reference fixtures for ildstudy.reference.lungfunction (issue 11, item 1), computed with R's rspiro package.
#
# rspiro (Lytras, GPL >= 2) is on CRAN, which this build machine cannot reach, and it is not a Debian package.
# Its source was therefore taken from the read-only GitHub mirror of CRAN, github.com/cran/rspiro, tag/commit
# "version 0.5" = 3858db5cfec3746655f82b854efe1c32ce4e0efb (identical to rspiro_0.5.tar.gz on CRAN, 2024-06-23).
# The script does not install rspiro: it load()s the package's R/sysdata.rda (the lookup tables) and source()s its
# R/*.R files, then calls rspiro's own functions (getLMS, getLMS_GLIgl, getLMS_GLIdiff, pred_*, LLN_*, zscore_*).
#
# Run from the repository root, giving the directory that holds rspiro's R/ folder:
#     git clone https://github.com/cran/rspiro /tmp/rspiro && git -C /tmp/rspiro checkout 3858db5
#     Rscript tests/reference/lungfunction_reference.R /tmp/rspiro
# (or unpack rspiro_0.5.tar.gz from CRAN and pass its directory). Needs r-base-core and r-cran-jsonlite.
#
# Writes
#   src/ildstudy/reference/lungfunction/tables/*.csv   the GLI lookup tables and the NHANES III coefficients,
#                                                      exported from rspiro's sysdata.rda (see tables/README.md)
#   tests/reference/lungfunction/<equation>.json        one fixture per equation: inputs and rspiro's L, M, S,
#                                                      predicted, LLN and z-score of a given observed value.
#
# Deliberate differences between rspiro 0.5 and ildstudy, and how the fixtures avoid them:
#   * GLI Global 2022 and GLI-2017 TLCO: rspiro takes the spline value at floor(age * 4) / 4 (no interpolation);
#     GLI's method (and ildstudy) interpolates linearly between the 0.25-year table ages. The fixtures for these
#     two equations use ages on the 0.25-year grid, where both agree. (rspiro's GLI-2012 code does interpolate.)
#   * NHANES III: Hankinson 1999 switches from the paediatric to the adult equation at 20 years for males and at
#     18 years for females (tables 4 and 5); rspiro uses 20 for both sexes. The NHANES III fixture has no female
#     aged 18 to < 20.
# The script is deterministic (no random numbers).

suppressPackageStartupMessages(library(jsonlite))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript tests/reference/lungfunction_reference.R <rspiro source directory>")
src <- args[[1]]
if (!dir.exists(file.path("tests", "reference"))) {
  stop("run from the repository root: Rscript tests/reference/lungfunction_reference.R <rspiro dir>")
}
rspiro_version <- read.dcf(file.path(src, "DESCRIPTION"), fields = "Version")[[1]]
load(file.path(src, "R", "sysdata.rda"), envir = globalenv())
for (f in list.files(file.path(src, "R"), pattern = "[.]R$", full.names = TRUE)) source(f)

out_dir   <- file.path("tests", "reference", "lungfunction")
table_dir <- file.path("src", "ildstudy", "reference", "lungfunction", "tables")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
dir.create(table_dir, showWarnings = FALSE, recursive = TRUE)

sexes    <- c(male = 1, female = 2)
measures <- c(FEV1 = "fev1", FVC = "fvc", FEV1FVC = "fev1_fvc", TLCO = "tlco")

## ---- tables --------------------------------------------------------------------------------------------------
write_table <- function(df, name) {
  write.csv(df, file.path(table_dir, name), row.names = FALSE, quote = FALSE)
}
spiro <- c("FEV1", "FVC", "FEV1FVC")

lk <- lookup[lookup$f %in% spiro, ]
lk$sex <- names(sexes)[lk$gender]
lk$measure <- measures[as.character(lk$f)]
lk <- lk[order(lk$sex, lk$measure, lk$agebound), ]
write_table(data.frame(sex = lk$sex, measure = lk$measure, age = lk$agebound,
                       l_spline = lk$l0, m_spline = lk$m0, s_spline = lk$s0), "gli2012_splines.csv")
cf <- unique(lk[, c("sex", "measure", paste0("a", 0:6), paste0("p", 0:5), "q0", "q1")])
write_table(cf, "gli2012_coefficients.csv")

gl <- GLIgl_lookup
gl$sex <- names(sexes)[gl$gender]
gl$measure <- measures[gl$f]
gl <- gl[order(gl$sex, gl$measure, gl$agebound), ]
write_table(data.frame(sex = gl$sex, measure = gl$measure, age = gl$agebound,
                       l_spline = gl$Lspline, m_spline = gl$Mspline, s_spline = gl$Sspline),
            "gli_global2022_splines.csv")

dl <- GLIdiff_lookup$SI[GLIdiff_lookup$SI$f == "TLCO", ]
dl$sex <- names(sexes)[dl$gender]
dl <- dl[order(dl$sex, dl$agebound), ]
write_table(data.frame(sex = dl$sex, measure = "tlco", age = dl$agebound,
                       l_spline = dl$Lspline, m_spline = dl$Mspline, s_spline = dl$Sspline),
            "gli_tlco2017_splines.csv")

nh_eth <- c("caucasian", "african_american", "mexican_american")
t45 <- NHtb45[NHtb45$param %in% c("FEV1", "FVC"), ]
t45 <- data.frame(measure = measures[t45$param], sex = names(sexes)[t45$sex], ethnicity = nh_eth[t45$ethnicity],
                  age_group = ifelse(t45$under20, "child", "adult"), b0 = t45$intercept, b1_age = t45$age,
                  b2_age2 = t45$age2, b3_height2_pred = t45$HtPRD, b3_height2_lln = t45$HtLLN)
t6 <- NHtb6[NHtb6$param == "FEV1FVC", ]
t6 <- data.frame(measure = "fev1_fvc", sex = names(sexes)[t6$sex], ethnicity = nh_eth[t6$ethnicity],
                 age_group = "all", b0 = t6$interceptPRD / 100, b1_age = t6$Age / 100, b2_age2 = 0,
                 b3_height2_pred = 0, b3_height2_lln = 0, b0_lln = t6$interceptLLN / 100)
t45$b0_lln <- t45$b0
write_table(rbind(t45, t6), "nhanes3_coefficients.csv")

## ---- fixtures ------------------------------------------------------------------------------------------------
# Ages 5 to 90 (GLI TLCO's range) on the 0.25-year grid; GLI-2012 also gets off-grid ages (rspiro interpolates).
grid_ages <- c(5, 6.5, 8.25, 11.75, 14.25, 17.75, 21, 30.5, 45.5, 60, 72.25, 84.75, 90)
off_ages  <- c(5.1, 9.37, 15.6, 33.33, 58.9, 89.9)
# Two heights per age: a typical height for that age and sex, minus and plus 8 cm.
typical_height <- function(age, sex) {
  h <- ifelse(sex == 1, 112 + 6.2 * (pmin(age, 17) - 5), 111 + 5.6 * (pmin(age, 16) - 5))
  h - ifelse(age > 60, 0.1 * (age - 60), 0)
}
design <- function(ages, ethnicities) {
  g <- expand.grid(age = ages, sex = sexes, ethnicity = ethnicities, dh = c(-8, 8), KEEP.OUT.ATTRS = FALSE)
  g$height_cm <- round(typical_height(g$age, g$sex) + g$dh, 1)
  g$dh <- NULL
  g[order(g$ethnicity, g$sex, g$age, g$height_cm), ]
}
# Observed values that exercise both tails: predicted x 0.7 .. 1.2, and for ratios predicted x 0.8 .. 1.1.
obs_factor <- function(n, ratio) if (ratio) rep(c(0.8, 0.95, 1.1), length.out = n) else
  rep(c(0.7, 0.9, 1.05, 1.2), length.out = n)

rows_out <- function(d, m, lms, pred, lln, obs, z) {
  data.frame(sex = names(sexes)[d$sex], ethnicity = d$eth_name, age = d$age, height_cm = d$height_cm,
             measure = m, L = lms$L, M = lms$M, S = lms$S, predicted = pred, lln = lln, observed = obs, z = z)
}
write_fixture <- function(name, equation, rows, call, notes) {
  fx <- list(source = "tests/reference/lungfunction_reference.R", equation = equation,
             rspiro_version = rspiro_version, rspiro_commit = "3858db5cfec3746655f82b854efe1c32ce4e0efb",
             r_version = R.version.string, call = call, notes = notes, rows = rows)
  write_json(fx, file.path(out_dir, paste0(name, ".json")), auto_unbox = TRUE, digits = NA, pretty = TRUE)
}

# GLI-2012: five ethnic groups
gli_eth <- c("caucasian", "black", "north_east_asian", "south_east_asian", "other")
d <- design(c(grid_ages, off_ages), 1:5)
d$eth_name <- gli_eth[d$ethnicity]
rows <- NULL
for (p in spiro) {
  lms  <- getLMS(d$age, d$height_cm / 100, d$sex, d$ethnicity, p)
  pred <- pred_GLI(d$age, d$height_cm / 100, d$sex, d$ethnicity, p)
  lln  <- LLN_GLI(d$age, d$height_cm / 100, d$sex, d$ethnicity, p)
  obs  <- round(pred * obs_factor(nrow(d), p == "FEV1FVC"), 3)
  z    <- do.call(zscore_GLI, c(list(age = d$age, height = d$height_cm / 100, gender = d$sex,
                                     ethnicity = d$ethnicity), setNames(list(obs), p)))
  rows <- rbind(rows, rows_out(d, measures[[p]], lms, pred, lln, obs, z))
}
write_fixture("gli_2012", "gli_2012", rows,
              "getLMS / pred_GLI / LLN_GLI / zscore_GLI(age, height_m, gender, ethnicity, param)",
              "ethnicity codes 1..5 = caucasian, black (African-American), north_east_asian, south_east_asian, other")

# GLI Global 2022 (race-neutral)
d <- design(grid_ages, 1)
d$eth_name <- NA
rows <- NULL
for (p in spiro) {
  lms  <- getLMS_GLIgl(d$age, d$height_cm / 100, d$sex, p)
  pred <- pred_GLIgl(d$age, d$height_cm / 100, d$sex, p)
  lln  <- LLN_GLIgl(d$age, d$height_cm / 100, d$sex, p)
  obs  <- round(pred * obs_factor(nrow(d), p == "FEV1FVC"), 3)
  z    <- do.call(zscore_GLIgl, c(list(age = d$age, height = d$height_cm / 100, gender = d$sex),
                                  setNames(list(obs), p)))
  rows <- rbind(rows, rows_out(d, measures[[p]], lms, pred, lln, obs, z))
}
write_fixture("gli_global_2022", "gli_global_2022", rows,
              "getLMS_GLIgl / pred_GLIgl / LLN_GLIgl / zscore_GLIgl(age, height_m, gender, param)",
              "ages on the 0.25-year grid only (rspiro does not interpolate the GLI Global spline table)")

# GLI-2017 TLCO, SI and traditional units
for (si in c(TRUE, FALSE)) {
  lms  <- getLMS_GLIdiff(d$age, d$height_cm / 100, d$sex, "TLCO", SI = si)
  pred <- pred_GLIdiff(d$age, d$height_cm / 100, d$sex, "TLCO", SI = si)
  lln  <- LLN_GLIdiff(d$age, d$height_cm / 100, d$sex, "TLCO", SI = si)
  obs  <- round(pred * obs_factor(nrow(d), FALSE), 3)
  z    <- zscore_GLIdiff(d$age, d$height_cm / 100, d$sex, TLCO = obs, SI = si)
  rows <- rows_out(d, "tlco", lms, pred, lln, obs, z)
  rows$units <- if (si) "si" else "traditional"
  write_fixture(paste0("gli_tlco_2017_", if (si) "si" else "traditional"), "gli_tlco_2017", rows,
                sprintf("getLMS_GLIdiff / pred_GLIdiff / LLN_GLIdiff / zscore_GLIdiff(..., 'TLCO', SI = %s)", si),
                "SI = mmol/min/kPa, traditional = mL/min/mmHg; ages on the 0.25-year grid only; no Hb correction")
}

# NHANES III (Hankinson 1999): ages 8 to 80, three ethnic groups, no female aged 18 to < 20 (see header)
d <- design(c(8, 9.5, 12, 15, 17.5, 19.5, 20, 30, 45, 60, 72, 80), 1:3)
d <- d[!(d$sex == 2 & d$age >= 18 & d$age < 20), ]
d$eth_name <- nh_eth[d$ethnicity]
rows <- NULL
for (p in spiro) {
  pred <- pred_NHANES3(d$age, d$height_cm / 100, d$sex, d$ethnicity, p)
  lln  <- LLN_NHANES3(d$age, d$height_cm / 100, d$sex, d$ethnicity, p)
  obs  <- round(pred * obs_factor(nrow(d), p == "FEV1FVC"), 3)
  z    <- do.call(zscore_NHANES3, c(list(age = d$age, height = d$height_cm / 100, gender = d$sex,
                                        ethnicity = d$ethnicity), setNames(list(obs), p)))
  lms  <- list(L = NA, M = NA, S = NA)
  rows <- rbind(rows, rows_out(d, measures[[p]], lms, pred, lln, obs, z))
}
write_fixture("nhanes3", "nhanes3", rows,
              "pred_NHANES3 / LLN_NHANES3 / zscore_NHANES3(age, height_m, gender, ethnicity, param)",
              "z = (observed - predicted) / ((predicted - LLN) / 1.645); FEV1/FVC as a ratio (rspiro divides % by 100)")
cat("wrote", length(list.files(out_dir)), "fixtures and", length(list.files(table_dir, "csv$")), "tables\n")
