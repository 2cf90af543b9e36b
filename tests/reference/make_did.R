# Reference fixtures for design-based difference-in-differences (survey.evaluation), computed
# with R's `survey` (svyglm, regTermTest).  R is the oracle only; nothing here is ported.
#
# Run from the repository root:   Rscript tests/reference/make_did.R
# Input : tests/reference/data/did_pooled.csv, pooled waves drawn once by
#         survey.evaluation.simulate_pooled_waves(n_strata=5, areas_per_stratum=8,
#         respondents=25, waves=(2019, 2020, 2021, 2022), start=2021, seed=11) with
#         tp = treated * post added (the programme term).
# Design: areas are the PSUs across waves (clustered on area), strata = stratum, weights.
# Outputs (tests/reference/fixtures/did/):
#   r_did.csv        case, term (R's name), estimate, se, df (df.residual)
#   r_did_tests.csv  case, terms, F, df1, df2, p_value (regTermTest, method "Wald")
# Cases: <design>_<family>_<model>; design taylor | jkn (as.svrepdesign(type = "JKn"));
# family gaussian | quasibinomial; model did (victim ~ factor(wave) + treated + tp + sex) or
# pretrend (adds treated x wave for the pre waves but the last: t2019 = treated * (wave == 2019)).

suppressPackageStartupMessages(library(survey))
OUT <- file.path("tests", "reference", "fixtures", "did")
dir.create(OUT, recursive = TRUE, showWarnings = FALSE)
num <- function(x) ifelse(is.na(x), "NA", sprintf("%.15g", as.numeric(x)))
write_fixture <- function(df, path, text_cols) {
  for (v in names(df)) if (is.numeric(df[[v]])) df[[v]] <- num(df[[v]])
  write.csv(df, path, row.names = FALSE, na = "NA", quote = which(names(df) %in% text_cols))
}
x <- read.csv(file.path("tests", "reference", "data", "did_pooled.csv"))
x$t2019 <- x$treated * (x$wave == 2019)
x$sex <- factor(x$sex)
taylor <- svydesign(id = ~area, strata = ~stratum, weights = ~weight, data = x)
designs <- list(taylor = taylor, jkn = as.svrepdesign(taylor, type = "JKn"))
models <- list(did = victim ~ factor(wave) + treated + tp + sex,
               pretrend = victim ~ factor(wave) + treated + t2019 + tp + sex)
coefs <- list(); tests <- list()
for (dn in names(designs)) for (fam in c("gaussian", "quasibinomial")) for (mn in names(models)) {
  case <- paste(dn, fam, mn, sep = "_")
  m <- svyglm(models[[mn]], designs[[dn]], family = fam)
  s <- summary(m)$coefficients
  coefs[[case]] <- data.frame(case = case, term = rownames(s), estimate = s[, 1], se = s[, 2],
                              df = m$df.residual)
  if (mn == "pretrend") {
    tt <- regTermTest(m, ~t2019, method = "Wald")
    tests[[case]] <- data.frame(case = case, terms = "t2019", F = as.numeric(tt$Ftest), df1 = tt$df,
                                df2 = tt$ddf, p_value = as.numeric(tt$p))
  }
}
write_fixture(do.call(rbind, coefs), file.path(OUT, "r_did.csv"), c("case", "term"))
write_fixture(do.call(rbind, tests), file.path(OUT, "r_did_tests.csv"), c("case", "terms"))
writeLines(capture.output(sessionInfo()), file.path(OUT, "r_session.txt"))
cat("done\n")
