package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// ImportResult counts what an import wrote.
type ImportResult struct {
	Products int
	Variants int
}

// ImportCatalog upserts products and their variants in one transaction: either the whole
// file lands or nothing does. Stock levels are left as they are.
func ImportCatalog(ctx context.Context, pool *pgxpool.Pool, products []catalog.Product) (ImportResult, error) {
	var res ImportResult
	productRows := make([]db.UpsertProductsParams, 0, len(products))
	var variantRows []db.UpsertVariantsParams
	for _, p := range products {
		var url *string
		if p.URL != "" {
			url = &p.URL
		}
		productRows = append(productRows, db.UpsertProductsParams{ID: p.ID, Title: p.Title, Url: url})
		for _, v := range p.Variants {
			variantRows = append(variantRows, db.UpsertVariantsParams{
				ID: v.ID, ProductID: p.ID, Title: v.Title, PriceAmount: v.PriceAmount, Currency: v.Currency,
				Available: v.Available, AvailabilityStatus: v.AvailabilityStatus, FulfillmentType: string(v.Fulfillment),
			})
		}
	}
	err := WithTx(ctx, pool, func(q *db.Queries) error {
		var batchErr error
		pr := q.UpsertProducts(ctx, productRows)
		pr.Exec(func(i int, err error) {
			if err != nil && batchErr == nil {
				batchErr = fmt.Errorf("product %s: %w", productRows[i].ID, err)
			}
		})
		if err := errors.Join(batchErr, pr.Close()); err != nil {
			return err
		}
		vr := q.UpsertVariants(ctx, variantRows)
		vr.Exec(func(i int, err error) {
			if err != nil && batchErr == nil {
				batchErr = fmt.Errorf("variant %s: %w", variantRows[i].ID, err)
			}
		})
		return errors.Join(batchErr, vr.Close())
	})
	if err != nil {
		return res, fmt.Errorf("import catalog: %w", err)
	}
	res.Products, res.Variants = len(productRows), len(variantRows)
	return res, nil
}

// SetStock sets the stock of a variant; nil means unlimited.
func SetStock(ctx context.Context, pool *pgxpool.Pool, variantID string, quantity *int32) error {
	n, err := db.New(pool).SetVariantStock(ctx, db.SetVariantStockParams{ID: variantID, StockQuantity: quantity})
	if err != nil {
		return fmt.Errorf("set stock: %w", err)
	}
	if n == 0 {
		return checkout.Errorf(checkout.KindNotFound, "not_found", checkout.Field{}, "No variant with id %q.", variantID)
	}
	return nil
}
